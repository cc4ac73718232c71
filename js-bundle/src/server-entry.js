// Entry of dist/server.js: the example components, registered by name, and
// the modern-React examples (src/modern: Suspense through prerender, a
// react-router data router, styled-components), which render through
// functions of their own.
import { components } from "./registry.js";
import { installServerRenderer } from "./ssr.js";
import { helloWorldProps, listingCardProps, searchBarProps, searchResultsProps } from "./sample-data.js";
import { modernRenderers, routerPageProps, styledCardProps, suspenseReviewsProps } from "./modern/index.js";

installServerRenderer(components, {
  warmup: [
    { name: "HelloWorld", props: helloWorldProps() },
    { name: "SearchBar", props: searchBarProps() },
    { name: "ListingCard", props: listingCardProps() },
    { name: "SearchResults", props: searchResultsProps(20) },
    { name: "SuspenseReviews", props: suspenseReviewsProps() },
    { name: "RouterPage", props: routerPageProps() },
    { name: "StyledCard", props: styledCardProps() },
  ],
  extra: modernRenderers,
  // client-entry.js finds components by Hypernova's placement markup: have
  // /batch answers carry it, so Hypernova's clients get pages that hydrate.
  markup: "placement",
});
