import { useState } from "react";

// The smallest useful component: a greeting and a button whose click handler
// only works once the page is hydrated (the browser tests click it).
export default function HelloWorld({ name = "World", greeting = "Hello" }) {
  const [clicks, setClicks] = useState(0);
  return (
    <div className="hello-world">
      <h1>
        {greeting}, {name}!
      </h1>
      <button type="button" className="hello-button" onClick={() => setClicks((n) => n + 1)}>
        Clicked {clicks} {clicks === 1 ? "time" : "times"}
      </button>
    </div>
  );
}
