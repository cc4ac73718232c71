// Writes the props fixtures the tests and benchmarks use into bench/fixtures/.
// Deterministic: the same sources always produce byte-identical files (CI
// regenerates them and checks git sees no change).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  helloWorldProps,
  listingCardProps,
  navBarProps,
  searchBarProps,
  searchResultsProps,
} from "../src/sample-data.js";

const out = join(dirname(fileURLToPath(import.meta.url)), "..", "..", "bench", "fixtures");
mkdirSync(out, { recursive: true });

function write(name, value) {
  const text = JSON.stringify(value);
  writeFileSync(join(out, name), text);
  console.log(`${name}: ${text.length} bytes`);
}

const large = searchResultsProps(100);
write("small-props.json", helloWorldProps());
write("large-props.json", large);
// Ready Hypernova batch bodies: what a page of a Rails app would send.
write("batch-small.json", {
  0: { name: "NavBar", data: navBarProps(), metadata: {} },
  1: { name: "HelloWorld", data: helloWorldProps(), metadata: {} },
  2: { name: "SearchBar", data: searchBarProps(), metadata: {} },
  3: { name: "ListingCard", data: listingCardProps(), metadata: {} },
});
write("batch-large.json", {
  0: { name: "NavBar", data: navBarProps(), metadata: {} },
  1: { name: "SearchResults", data: large, metadata: {} },
});
