// A react-router 7 data-router page as a server renders it: match the URL,
// run the loaders (their data comes from the job's props, through the
// request context), then render the matched route tree. Loaders may throw
// redirects and 404s, as real ones do.
import { Link, Outlet, data, redirect, useLoaderData, useRouteError, isRouteErrorResponse } from "react-router";

function Layout() {
  const { site, user } = useLoaderData();
  return (
    <div className="router-page">
      <header>
        <Link to="/">{site}</Link>
        <nav>
          <Link to="/listings/1">First listing</Link> <Link to="/listings/2">Second listing</Link>
        </nav>
        <span className="user">{user ? `Signed in as ${user}` : "Guest"}</span>
      </header>
      <main>
        <Outlet />
      </main>
    </div>
  );
}

function Home() {
  const { listings } = useLoaderData();
  return (
    <ul className="listing-index">
      {listings.map((l) => (
        <li key={l.id}>
          <Link to={`/listings/${l.id}`}>{l.title}</Link>
        </li>
      ))}
    </ul>
  );
}

function Listing() {
  const listing = useLoaderData();
  return (
    <article className="listing" data-id={listing.id}>
      <h1>{listing.title}</h1>
      <p>{listing.description}</p>
      <p className="price">{listing.price} per night</p>
    </article>
  );
}

function RouteError() {
  const error = useRouteError();
  return isRouteErrorResponse(error) ? (
    <p className="route-error">
      {error.status} {error.data}
    </p>
  ) : (
    <p className="route-error">Something went wrong</p>
  );
}

// Loaders get the job's props as `context` (createStaticHandler's
// requestContext): the data comes in with the job, never over a network.
export const routes = [
  {
    id: "root",
    path: "/",
    Component: Layout,
    ErrorBoundary: RouteError,
    loader: ({ context }) => ({ site: context.site, user: context.user ?? null }),
    children: [
      {
        index: true,
        Component: Home,
        loader: ({ context }) => ({ listings: context.listings.map(({ id, title }) => ({ id, title })) }),
      },
      {
        path: "listings/:id",
        Component: Listing,
        ErrorBoundary: RouteError,
        loader: ({ params, context }) => {
          const listing = context.listings.find((l) => String(l.id) === params.id);
          if (!listing) throw data("No such listing", { status: 404 });
          return listing;
        },
      },
      {
        // An old URL scheme that real apps keep redirecting.
        path: "rooms/:id",
        loader: ({ params }) => redirect(`/listings/${params.id}`, 301),
      },
    ],
  },
];
