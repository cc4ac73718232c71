const React = require('react');
const renderReact = require('hypernova-react').renderReact;

function Greeting(props) {
  return (
    <div className="greeting">
      <h1>Hello, {props.name}!</h1>
      <ul>
        {props.places.map((place) => (
          <li key={place}>{place}</li>
        ))}
      </ul>
    </div>
  );
}

module.exports = renderReact('Greeting.js', Greeting);
