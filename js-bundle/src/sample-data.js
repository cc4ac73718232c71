// Deterministic sample props for the example components. The fixtures script
// writes them to bench/fixtures/, and the server bundle uses small ones to
// warm the isolate up. A seeded PRNG keeps every run byte-identical.

function mulberry32(seed) {
  let a = seed >>> 0;
  return function next() {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CITIES = ["Lisbon", "Kyoto", "Oaxaca", "Reykjavík", "Cape Town", "Tbilisi", "Montréal", "Hobart", "Valparaíso", "Zürich"];
const ROOM_TYPES = ["Entire loft", "Private room", "Entire cottage", "Tiny home", "Entire apartment", "Guest suite"];
const ADJECTIVES = ["Sunny", "Quiet", "Historic", "Modern", "Cozy", "Airy", "Hillside", "Waterfront", "Garden", "Minimal"];
const NOUNS = ["loft", "studio", "hideaway", "flat", "cabin", "retreat", "bungalow", "nest", "atelier", "house"];
const AMENITIES = [
  ["wifi", "Fast wifi – 250 Mbps", "essentials"],
  ["kitchen", "Kitchen", "essentials"],
  ["washer", "Washer", "essentials"],
  ["dryer", "Dryer", "essentials"],
  ["ac", "Air conditioning", "comfort"],
  ["heating", "Heating", "comfort"],
  ["workspace", "Dedicated workspace", "work"],
  ["tv", "55\" HDTV with Netflix", "entertainment"],
  ["pool", "Shared outdoor pool", "outdoor"],
  ["hottub", "Private hot tub", "outdoor"],
  ["parking", "Free parking on premises", "parking"],
  ["ev", "EV charger – level 2", "parking"],
  ["crib", "Crib", "family"],
  ["highchair", "High chair", "family"],
  ["gym", "Gym in building", "fitness"],
  ["bbq", "BBQ grill", "outdoor"],
  ["fireplace", "Indoor fireplace", "comfort"],
  ["coffee", "Espresso machine", "kitchen"],
  ["smoke", "Smoke alarm", "safety"],
  ["co", "Carbon monoxide alarm", "safety"],
  ["firstaid", "First aid kit", "safety"],
  ["lockbox", "Self check-in with lockbox", "checkin"],
];
const FIRST_NAMES = ["Ana", "Kenji", "Lucía", "Sigrún", "Thabo", "Nino", "Émile", "Grace", "Mateo", "Lea", "Omar", "Priya"];
const WORDS = (
  "bright open plan living space with tall windows overlooking the old town a short walk to cafes markets and the tram " +
  "line freshly renovated with local materials hand made tiles oak floors and a calm palette perfect for remote work " +
  "long stays and families the neighbourhood is quiet at night yet lively by day with galleries bakeries and parks"
).split(" ");

function pick(rand, list) {
  return list[Math.floor(rand() * list.length)];
}

function sentence(rand, words) {
  const out = [];
  for (let i = 0; i < words; i++) out.push(pick(rand, WORDS));
  const s = out.join(" ");
  return s[0].toUpperCase() + s.slice(1) + ".";
}

function listing(rand, i) {
  const id = 40000000 + i * 7919;
  const city = pick(rand, CITIES);
  const nightly = 40 + Math.floor(rand() * 460);
  const discount = rand() < 0.3 ? Math.floor(nightly * 0.12) : 0;
  const nights = 5;
  const photos = [];
  for (let p = 0; p < 8; p++) {
    photos.push({
      id: `${id}-${p}`,
      url: `https://images.example.com/pictures/${id}/${p}-${Math.floor(rand() * 1e9).toString(36)}.jpg?im_w=720`,
      caption: `${pick(rand, ADJECTIVES)} ${pick(rand, ["bedroom", "kitchen", "living room", "terrace", "bathroom", "view", "entrance", "garden"])}`,
      width: 720,
      height: 480,
    });
  }
  const amenities = [];
  for (const [aid, label, category] of AMENITIES) {
    if (rand() < 0.7) amenities.push({ id: aid, label, category });
  }
  const hostName = pick(rand, FIRST_NAMES);
  return {
    id,
    title: `${pick(rand, ADJECTIVES)} ${pick(rand, NOUNS)} near the ${pick(rand, ["river", "old town", "harbour", "market", "university", "park"])}`,
    city,
    roomType: pick(rand, ROOM_TYPES),
    guests: 1 + Math.floor(rand() * 8),
    bedrooms: 1 + Math.floor(rand() * 4),
    beds: 1 + Math.floor(rand() * 5),
    baths: 1 + Math.floor(rand() * 3),
    description: [sentence(rand, 40), sentence(rand, 35), sentence(rand, 30)].join(" "),
    photos,
    amenities,
    host: {
      id: 900000 + i,
      name: hostName,
      avatarUrl: `https://images.example.com/users/${900000 + i}/avatar.jpg?im_w=80`,
      superhost: rand() < 0.4,
      responseRate: 80 + Math.floor(rand() * 21),
      responseTime: pick(rand, ["within an hour", "within a few hours", "within a day"]),
      joined: 2010 + Math.floor(rand() * 15),
      languages: ["English", pick(rand, ["Português", "日本語", "Español", "Íslenska", "isiZulu", "ქართული", "Français"])],
    },
    highlights: [
      { title: "Great location", detail: sentence(rand, 10) },
      { title: "Self check-in", detail: sentence(rand, 8) },
      { title: "Free cancellation", detail: `Cancel before check-in for a full refund ${sentence(rand, 6)}` },
    ],
    rating: { average: rand() < 0.05 ? null : 4 + Math.round(rand() * 100) / 100, count: Math.floor(rand() * 600) },
    pricing: { nightly, discountedNightly: nightly - discount, nights, total: (nightly - discount) * nights + 35 },
    location: { lat: Math.round((rand() * 140 - 70) * 1e6) / 1e6, lng: Math.round((rand() * 360 - 180) * 1e6) / 1e6 },
    instantBook: rand() < 0.5,
    reviews: Array.from({ length: 3 }, (_, r) => ({
      id: `${id}-r${r}`,
      author: pick(rand, FIRST_NAMES),
      date: `2026-0${1 + Math.floor(rand() * 9)}-1${Math.floor(rand() * 10)}`,
      text: sentence(rand, 28),
    })),
  };
}

export function searchResultsProps(count = 100, seed = 42) {
  const rand = mulberry32(seed);
  const listings = [];
  for (let i = 0; i < count; i++) listings.push(listing(rand, i));
  return {
    currency: "EUR",
    locale: "de-DE",
    search: {
      query: "Lisbon",
      checkIn: "2026-12-18",
      checkOut: "2026-12-23",
      guests: 2,
      filters: [
        { id: "wifi", label: "Wifi", active: true },
        { id: "kitchen", label: "Kitchen", active: false },
        { id: "instant", label: "Instant book", active: true },
      ],
    },
    facets: AMENITIES.map(([aid, label], i) => ({ id: aid, label, count: 10 + ((i * 37) % 300) })),
    pagination: { page: 1, pages: 15, total: 15 * count },
    listings,
  };
}

export function listingCardProps(seed = 7) {
  const rand = mulberry32(seed);
  return { listing: listing(rand, 1), currency: "USD", locale: "en-US" };
}

export function searchBarProps() {
  return {
    query: "Kyoto",
    checkIn: "2027-03-28",
    checkOut: "2027-04-04",
    guests: 3,
    filters: [
      { id: "wifi", label: "Wifi", active: true },
      { id: "pool", label: "Pool", active: false },
    ],
  };
}

export function navBarProps() {
  return {
    user: { name: "Grace", avatarUrl: "https://images.example.com/users/1/avatar.jpg", unread: 3 },
    links: [
      { href: "/trips", label: "Trips" },
      { href: "/wishlists", label: "Wishlists" },
      { href: "/inbox", label: "Inbox" },
    ],
  };
}

export function helloWorldProps() {
  return { name: "ssrd" };
}
