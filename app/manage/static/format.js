// Money and dates as a person reads them. Amounts arrive as integer minor units (cents).

const digitsCache = new Map();

function fractionDigits(currency) {
  if (!digitsCache.has(currency)) {
    const options = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions();
    digitsCache.set(currency, options.maximumFractionDigits);
  }
  return digitsCache.get(currency);
}

/** 15833 USD -> "$158.33"; a currency without minor units (JPY) is shown as is. */
export function money(minor, currency) {
  // null: the currency has no configured price (the plan summary says so, R18), never "0".
  if (minor === null || minor === undefined) return "—";
  const digits = fractionDigits(currency);
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(
    minor / 10 ** digits,
  );
}

/** A calendar date ("2026-12-01") or a UTC time, as a long date in UTC (billing dates are UTC). */
export function day(value) {
  const when = value.length === 10 ? new Date(`${value}T00:00:00Z`) : new Date(value);
  return when.toLocaleDateString(undefined, { dateStyle: "long", timeZone: "UTC" });
}

export const plural = (n, one, many) =>
  `${n.toLocaleString()} ${n === 1 ? one : many}`;
