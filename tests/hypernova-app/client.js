// The app's browser entry, as with Hypernova: requiring each component
// module mounts every placement of it on the page (hypernova-react's
// renderReact does that on the client).
require('./components/Greeting.js');
require('./components/Counter.js');
require('./components/Listing.js');
require('./components/Footer.js');
