// Entry of dist/server.js: the example components, registered by name.
import { components } from "./registry.js";
import { installServerRenderer } from "./ssr.js";
import { helloWorldProps, listingCardProps, searchBarProps, searchResultsProps } from "./sample-data.js";

installServerRenderer(components, {
  warmup: [
    { name: "HelloWorld", props: helloWorldProps() },
    { name: "SearchBar", props: searchBarProps() },
    { name: "ListingCard", props: listingCardProps() },
    { name: "SearchResults", props: searchResultsProps(20) },
  ],
});
