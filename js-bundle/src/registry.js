// The one list of components, shared by the server bundle (render by name)
// and the client bundle (hydrate by name): a single source of truth.
import HelloWorld from "./components/HelloWorld.jsx";
import ListingCard from "./components/ListingCard.jsx";
import NavBar from "./components/NavBar.jsx";
import SearchBar from "./components/SearchBar.jsx";
import SearchResults from "./components/SearchResults.jsx";

export const components = { HelloWorld, ListingCard, NavBar, SearchBar, SearchResults };
