const React = require('react');
const renderReactStatic = require('hypernova-react').renderReactStatic;

function Footer(props) {
  return <footer className="footer">© {props.year} {props.company}</footer>;
}

module.exports = renderReactStatic('Footer.js', Footer);
