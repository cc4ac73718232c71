// Formatting helpers shared by the listing components. They use Intl, as real
// SSR code does, so a worker without ICU data fails loudly here.

const priceFormats = new Map();

export function formatPrice(amount, currency = "USD", locale = "en-US") {
  const key = `${locale}|${currency}`;
  let fmt = priceFormats.get(key);
  if (!fmt) {
    fmt = new Intl.NumberFormat(locale, { style: "currency", currency, maximumFractionDigits: 0 });
    priceFormats.set(key, fmt);
  }
  return fmt.format(amount);
}

export function formatRating(rating) {
  return typeof rating === "number" ? rating.toFixed(2) : "New";
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}
