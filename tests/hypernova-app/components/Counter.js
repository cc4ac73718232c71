const React = require('react');
const renderReact = require('hypernova-react').renderReact;

function Counter(props) {
  const [count, setCount] = React.useState(props.start);
  const [live, setLive] = React.useState(false);
  React.useEffect(() => setLive(true), []);
  return (
    <div className="counter" data-live={live ? 'yes' : 'no'}>
      <span className="label">{props.label}</span>
      <button type="button" onClick={() => setCount(count + 1)}>
        Clicked {count} times
      </button>
    </div>
  );
}

module.exports = renderReact('Counter.js', Counter);
