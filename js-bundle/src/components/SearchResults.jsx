import ListingCard from "./ListingCard.jsx";
import SearchBar from "./SearchBar.jsx";
import { plural } from "./format.js";

// The heavy page: a search bar, facets, about a hundred listing cards and a
// pager. Its props are a few hundred KB, like the pages Hypernova served.
export default function SearchResults({ search, listings, facets = [], pagination, currency, locale }) {
  return (
    <main className="search-results">
      <SearchBar {...search} />
      <section className="search-summary">
        <h2>
          {plural(pagination.total, "stay", "stays")} in {search.query}
        </h2>
        <ul className="facets">
          {facets.map((f) => (
            <li key={f.id}>
              {f.label} <span className="facet-count">{f.count}</span>
            </li>
          ))}
        </ul>
      </section>
      <section className="listings">
        {listings.map((l) => (
          <ListingCard key={l.id} listing={l} currency={currency} locale={locale} />
        ))}
      </section>
      <nav className="pagination">
        {Array.from({ length: pagination.pages }, (_, i) => i + 1).map((p) => (
          <a key={p} href={`/s?page=${p}`} className={p === pagination.page ? "current" : undefined}>
            {p}
          </a>
        ))}
      </nav>
    </main>
  );
}
