// The app's Hypernova server, written as Hypernova's README shows. Node
// runs it with the real hypernova/server (npm run build, then
// `PORT=3030 node dist/hypernova-node.cjs`); the ssrd build (build.mjs)
// bundles the same file with ssrd-hypernova's recipe, which maps
// hypernova/server and hypernova-react onto the adapter.
const hypernova = require('hypernova/server');

hypernova({
  devMode: true,

  getComponent(name, context) {
    if (name === 'Greeting.js') {
      return require('./components/Greeting.js');
    }
    if (name === 'Counter.js') {
      return require('./components/Counter.js');
    }
    if (name === 'Footer.js') {
      return require('./components/Footer.js');
    }
    // Components may also be fetched asynchronously: return a promise.
    if (name === 'Listing.js') {
      return new Promise((resolve) => setTimeout(() => resolve(require('./components/Listing.js')), 5));
    }
    // A render function that shows what getComponent was given.
    if (name === 'ContextProbe') {
      context.returnMeta.probed = true;
      return (props) => {
        const { token, ...rest } = context;
        return `<pre>${JSON.stringify({ keys: Object.keys(context), context: rest, sameProps: props === context.props })}</pre>`;
      };
    }
    // Hypernova fails a job whose render returns nothing.
    if (name === 'Empty') {
      return () => '';
    }
    return null;
  },

  host: '127.0.0.1',
  port: Number(process.env.PORT) || 3030,
});
