// Render functions for the "modern React" examples (issue 10): each maps
// one job onto the API a React 19 app really uses on the server, and the
// same source is built twice, into dist/server.js for ssrd and into
// dist/node-modern.cjs for Node, so tests/node_parity.rs can check that
// both print the same bytes.
//   SuspenseReviews  lazy + use(promise) under Suspense, through
//                    react-dom/static's prerender (or, with
//                    {mode: "stream"}, renderToReadableStream + allReady)
//   RouterPage       react-router 7's data router: createStaticHandler,
//                    a Request, loaders fed from props, StaticRouterProvider
//   StyledCard       styled-components with a ServerStyleSheet; the style
//                    tags come back in meta.styles
// Each returns {html, meta} (or a promise of it), as the contract allows.
import { createElement } from "react";
import { renderToReadableStream, renderToString } from "react-dom/server";
import { prerender } from "react-dom/static";
import { StaticRouterProvider, createStaticHandler, createStaticRouter } from "react-router";
import { ServerStyleSheet } from "styled-components";
import SuspenseReviews from "./SuspenseReviews.jsx";
import StyledCard from "./StyledCard.jsx";
import { routes } from "./RouterPage.jsx";

// Data "arrives later", as from a cache or a database, on a timer: the
// renderer must wait for it within the job's deadline.
function later(value, ms) {
  return new Promise((resolve) => setTimeout(() => resolve(value), ms));
}

// A stream of UTF-8 bytes, read to the end, as text.
async function readText(stream) {
  const reader = stream.getReader();
  const decoder = new TextDecoder();
  let text = "";
  for (;;) {
    const { done, value } = await reader.read();
    if (done) return text + decoder.decode();
    text += decoder.decode(value, { stream: true });
  }
}

async function renderSuspenseReviews(props) {
  const delay = props.delayMs ?? 5;
  const element = createElement(SuspenseReviews, {
    title: props.title,
    summaryPromise: later(props.summary, delay),
    reviewsPromise: later(props.reviews, delay * 2),
  });
  if (props.mode === "stream") {
    const stream = await renderToReadableStream(element);
    await stream.allReady;
    return { html: await readText(stream), meta: { mode: "stream" } };
  }
  const { prelude } = await prerender(element);
  // Read through a Response, as fetch-style code does.
  return { html: await new Response(prelude).text(), meta: { mode: "prerender" } };
}

async function renderRouterPage(props) {
  const handler = createStaticHandler(routes);
  const request = new Request(new URL(props.path ?? "/", "http://ssrd.invalid").href, {
    headers: { "accept-language": props.locale ?? "en" },
  });
  const context = await handler.query(request, { requestContext: props.data });
  if (context instanceof Response) {
    // A loader redirected: the caller answers the redirect from meta (an
    // empty render would count as a failed job, so a link goes in the HTML).
    const location = context.headers.get("location");
    return {
      html: renderToString(createElement("p", null, "Moved to ", createElement("a", { href: location }, location))),
      meta: { status: context.status, location },
    };
  }
  const router = createStaticRouter(handler.dataRoutes, context);
  const html = renderToString(createElement(StaticRouterProvider, { router, context }));
  return { html, meta: { status: context.statusCode } };
}

function renderStyledCard(props) {
  const sheet = new ServerStyleSheet();
  try {
    const html = renderToString(sheet.collectStyles(createElement(StyledCard, props)));
    return { html, meta: { styles: sheet.getStyleTags() } };
  } finally {
    sheet.seal();
  }
}

export const modernRenderers = {
  SuspenseReviews: renderSuspenseReviews,
  RouterPage: renderRouterPage,
  StyledCard: renderStyledCard,
};

// Small props for each, for warm-up and examples.
export function suspenseReviewsProps() {
  return {
    title: "Guest reviews",
    delayMs: 1,
    summary: { count: 2, average: "4.9" },
    reviews: [
      { id: "r1", author: "Ana", date: "2026-05-12", text: "Bright, quiet & close to the tram <3" },
      { id: "r2", author: "Kenji", date: "2026-06-01", text: "Would stay again." },
    ],
  };
}

export function routerPageProps(path = "/listings/2") {
  return {
    path,
    data: {
      site: "Loft",
      user: "Grace",
      listings: [
        { id: 1, title: "Sunny loft", description: "Tall windows over the old town.", price: "€120" },
        { id: 2, title: "Quiet studio", description: "A calm palette & oak floors.", price: "€95" },
      ],
    },
  };
}

export function styledCardProps() {
  return {
    title: "Sunny loft",
    body: "Tall windows over the old town.",
    actions: ["Reserve", "Save"],
    theme: { accent: "#e0565b", border: "#dddddd", font: "system-ui, sans-serif" },
  };
}
