// Money and dates as a person reads them. Amounts arrive as integer minor units (cents).

const digitsCache = new Map();

function fractionDigits(currency) {
  if (!digitsCache.has(currency)) {
    const options = new Intl.NumberFormat("en", { style: "currency", currency }).resolvedOptions();
    digitsCache.set(currency, options.maximumFractionDigits);
  }
  return digitsCache.get(currency);
}

/**
 * 15833 USD -> "$158.33": the account's currency (the summary's ``currency``) decides the
 * symbol and the minor units; the browser's locale only the digits' grouping. A currency
 * without minor units (JPY) is shown as is.
 */
export function money(minor, currency) {
  // null: the currency has no configured price (the plan summary says so, R18), never "0".
  if (minor === null || minor === undefined) return "—";
  const digits = fractionDigits(currency);
  return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(
    minor / 10 ** digits,
  );
}

function asDate(value) {
  return value.length === 10 ? new Date(`${value}T00:00:00Z`) : new Date(value);
}

/** A calendar date ("2026-12-01") or a UTC time, as a long date in UTC (billing dates are UTC). */
export function day(value) {
  return asDate(value).toLocaleDateString(undefined, { dateStyle: "long", timeZone: "UTC" });
}

/** A UTC time as the same long date with the time of day: "November 21, 2026, 12:00 UTC". */
export function dayTime(value) {
  const when = asDate(value);
  const time = when.toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
    timeZone: "UTC",
  });
  return `${day(value)}, ${time} UTC`;
}

export const plural = (n, one, many) =>
  `${n.toLocaleString()} ${n === 1 ? one : many}`;
