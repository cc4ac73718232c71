// A search form: small props, many attributes, the kind of component a page
// header renders on every request.
export default function SearchBar({ query = "", checkIn = "", checkOut = "", guests = 1, filters = [] }) {
  return (
    <form className="search-bar" action="/s" method="get" role="search">
      <label>
        Where
        <input name="query" type="search" defaultValue={query} placeholder="Search destinations" />
      </label>
      <label>
        Check in
        <input name="checkin" type="date" defaultValue={checkIn} />
      </label>
      <label>
        Check out
        <input name="checkout" type="date" defaultValue={checkOut} />
      </label>
      <label>
        Guests
        <input name="guests" type="number" min="1" max="16" defaultValue={guests} />
      </label>
      <fieldset className="search-filters">
        {filters.map((f) => (
          <label key={f.id}>
            <input type="checkbox" name="filter" value={f.id} defaultChecked={!!f.active} /> {f.label}
          </label>
        ))}
      </fieldset>
      <button type="submit">Search</button>
    </form>
  );
}
