// Suspense the way React 19 apps use it on the server: a code-split
// (`lazy`) list whose data is a promise read with `use`. Rendered with
// `react-dom/static`'s prerender (or renderToReadableStream + allReady),
// which waits for every boundary, so the HTML holds the resolved reviews,
// not the fallback.
import { Suspense, lazy, use } from "react";

// esbuild inlines the module (one classic script, no real import()), but
// React still sees a lazy component that suspends once.
const ReviewList = lazy(() => import("./ReviewList.jsx"));

function Summary({ summaryPromise }) {
  const summary = use(summaryPromise);
  return (
    <p className="review-summary">
      {summary.count} reviews, average {summary.average}
    </p>
  );
}

export default function SuspenseReviews({ title, summaryPromise, reviewsPromise }) {
  return (
    <section className="suspense-reviews">
      <h2>{title}</h2>
      <Suspense fallback={<p className="loading">Loading summary…</p>}>
        <Summary summaryPromise={summaryPromise} />
        <Suspense fallback={<p className="loading">Loading reviews…</p>}>
          <ReviewList reviewsPromise={reviewsPromise} />
        </Suspense>
      </Suspense>
    </section>
  );
}
