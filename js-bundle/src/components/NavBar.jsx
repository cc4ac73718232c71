// Site navigation with a signed-in user menu.
export default function NavBar({ user = null, links = [] }) {
  return (
    <nav className="nav-bar">
      <a className="logo" href="/">
        stay
      </a>
      <ul className="nav-links">
        {links.map((l) => (
          <li key={l.href}>
            <a href={l.href}>{l.label}</a>
          </li>
        ))}
      </ul>
      {user ? (
        <div className="user-menu">
          <img src={user.avatarUrl} alt="" width="32" height="32" />
          <span>{user.name}</span>
          {user.unread > 0 ? <span className="badge">{user.unread}</span> : null}
        </div>
      ) : (
        <a className="log-in" href="/login">
          Log in
        </a>
      )}
    </nav>
  );
}
