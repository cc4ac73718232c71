const React = require('react');
const renderReact = require('hypernova-react').renderReact;

function Listing(props) {
  return (
    <article className="listing">
      <h2>{props.title}</h2>
      <p className="price">{props.price.amount} {props.price.currency} per night</p>
      {props.superhost ? <span className="badge">Superhost</span> : null}
    </article>
  );
}

module.exports = renderReact('Listing.js', Listing);
