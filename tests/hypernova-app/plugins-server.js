// The same app with a Hypernova server plugin that uses initialize and the
// job-level hooks, to compare how Hypernova and ssrd run them. (Hypernova
// renders a batch's jobs concurrently and shares `context.data` between
// them, so the plugin keys what it stores by component name.)
const hypernova = require('hypernova/server');

let initialized = 'no';

hypernova({
  devMode: true,

  getComponent(name) {
    if (name === 'Greeting.js') {
      return require('./components/Greeting.js');
    }
    if (name === 'Counter.js') {
      return require('./components/Counter.js');
    }
    return null;
  },

  plugins: [
    {
      initialize() {
        return new Promise((resolve) => setTimeout(resolve, 5)).then(() => {
          initialized = 'yes';
        });
      },
      jobStart(context) {
        context.data.set(context.name, 'started');
        return new Promise((resolve) => setTimeout(resolve, 2));
      },
      beforeRender(context) {
        context.returnMeta.htmlBefore = context.html;
      },
      afterRender(context) {
        context.returnMeta.htmlLength = context.html.length;
        context.returnMeta.jobStart = context.data.get(context.name);
        context.returnMeta.initialized = initialized;
      },
      jobEnd(context) {
        context.returnMeta.jobEnd = true;
      },
    },
  ],

  host: '127.0.0.1',
  port: Number(process.env.PORT) || 3030,
});
