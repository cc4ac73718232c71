import { formatPrice, formatRating, plural } from "./format.js";

function Photo({ photo, index }) {
  return (
    <li className="listing-photo">
      <img src={photo.url} alt={photo.caption} width={photo.width} height={photo.height} loading={index === 0 ? "eager" : "lazy"} />
    </li>
  );
}

function Host({ host }) {
  return (
    <div className="listing-host">
      <img className="host-avatar" src={host.avatarUrl} alt="" width="40" height="40" />
      <span className="host-name">Hosted by {host.name}</span>
      {host.superhost ? <span className="badge superhost">Superhost</span> : null}
      <span className="host-response">
        Responds {host.responseTime} · {host.responseRate}% response rate
      </span>
      <span className="host-since">Host since {host.joined}</span>
    </div>
  );
}

// One search result: the unit a search page repeats about a hundred times.
export default function ListingCard({ listing, currency = "USD", locale = "en-US" }) {
  const { pricing, rating } = listing;
  return (
    <article className="listing-card" data-listing-id={listing.id}>
      <ul className="listing-photos">
        {listing.photos.map((p, i) => (
          <Photo key={p.id} photo={p} index={i} />
        ))}
      </ul>
      <div className="listing-body">
        <header>
          <span className="listing-kind">
            {listing.roomType} in {listing.city}
          </span>
          <h3 className="listing-title">
            <a href={`/rooms/${listing.id}`}>{listing.title}</a>
          </h3>
          <span className="listing-rating" title={plural(rating.count, "review", "reviews")}>
            ★ {formatRating(rating.average)} ({rating.count})
          </span>
        </header>
        <p className="listing-summary">
          {plural(listing.guests, "guest", "guests")} · {plural(listing.bedrooms, "bedroom", "bedrooms")} ·{" "}
          {plural(listing.beds, "bed", "beds")} · {plural(listing.baths, "bath", "baths")}
        </p>
        <p className="listing-description">{listing.description}</p>
        <ul className="listing-amenities">
          {listing.amenities.map((a) => (
            <li key={a.id} className={`amenity amenity-${a.category}`}>
              {a.label}
            </li>
          ))}
        </ul>
        <Host host={listing.host} />
        <ul className="listing-highlights">
          {listing.highlights.map((h) => (
            <li key={h.title}>
              <strong>{h.title}</strong> {h.detail}
            </li>
          ))}
        </ul>
        <footer className="listing-price">
          {pricing.discountedNightly < pricing.nightly ? (
            <s className="price-original">{formatPrice(pricing.nightly, currency, locale)}</s>
          ) : null}
          <strong className="price-nightly">{formatPrice(pricing.discountedNightly, currency, locale)}</strong> night ·{" "}
          <span className="price-total">{formatPrice(pricing.total, currency, locale)} total</span>
          {listing.instantBook ? <span className="badge instant">Instant book</span> : null}
        </footer>
      </div>
    </article>
  );
}
