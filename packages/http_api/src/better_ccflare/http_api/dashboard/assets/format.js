// Readable numbers: one place decides how counts, money, durations and times look.

const integer = new Intl.NumberFormat(undefined, { maximumFractionDigits: 0 });
const compact = new Intl.NumberFormat(undefined, { notation: "compact", maximumFractionDigits: 1 });
const oneDecimal = new Intl.NumberFormat(undefined, { maximumFractionDigits: 1 });

const missing = (v) => v === null || v === undefined || Number.isNaN(v);

export function fmtInt(v) {
  return missing(v) ? "–" : integer.format(v);
}

/** 1234 → "1,234"; 1234567 → "1.2M". */
export function fmtCount(v) {
  if (missing(v)) return "–";
  return Math.abs(v) < 10000 ? integer.format(v) : compact.format(v);
}

export function fmtUsd(v) {
  if (missing(v)) return "–";
  if (v === 0) return "$0.00";
  if (Math.abs(v) < 0.01) {
    // Two significant digits keep small amounts (and chart ticks) apart: $0.00005, $0.00015.
    return `$${v.toLocaleString(undefined, { maximumSignificantDigits: 2 })}`;
  }
  const digits = Math.abs(v) >= 1 ? 2 : 3;
  return `$${v.toLocaleString(undefined, { minimumFractionDigits: digits, maximumFractionDigits: digits })}`;
}

/** A request's cost: null means no price is known for its model, which is not $0. */
export function fmtCost(v) {
  return v === null ? "unknown" : fmtUsd(v);
}

/** The note under a cost total: how many requests it leaves out for want of a price. */
export function fmtUnpriced(count) {
  return count ? `+ ${integer.format(count)} request${count === 1 ? "" : "s"} with unknown price` : "";
}

export function fmtPct(v) {
  return missing(v) ? "–" : `${oneDecimal.format(v)}%`;
}

/** Milliseconds: "850 ms", "1.24 s", "2 min 5 s". */
export function fmtMs(v) {
  if (missing(v)) return "–";
  if (v < 1000) return `${integer.format(v)} ms`;
  if (v < 60000) return `${(v / 1000).toFixed(v < 10000 ? 2 : 1)} s`;
  const minutes = Math.floor(v / 60000);
  return `${minutes} min ${Math.round((v % 60000) / 1000)} s`;
}

/** A rate such as tokens per second: "45.3", "69,000". */
export function fmtRate(v) {
  return missing(v) || v === 0 ? "–" : oneDecimal.format(v);
}

const asDate = (t) => (t instanceof Date ? t : new Date(typeof t === "string" ? t : Number(t)));

export function fmtTime(t) {
  if (missing(t) || t === "") return "–";
  return asDate(t).toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function fmtDateTime(t) {
  if (missing(t) || t === "") return "–";
  return asDate(t).toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit",
  });
}

/** Date and time to the second, for request history: "Dec 7, 14:03:22". */
export function fmtStamp(t) {
  if (missing(t) || t === "") return "–";
  return asDate(t).toLocaleString(undefined, {
    month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit",
  });
}

/** "in 2 h 5 min", "3 min ago", "just now". */
export function fmtRelative(t, now = Date.now()) {
  if (missing(t) || t === "") return "never";
  const diff = asDate(t).getTime() - now;
  const abs = Math.abs(diff);
  if (abs < 45000) return diff > 0 ? "in a moment" : "just now";
  let text;
  if (abs < 3600000) text = `${Math.round(abs / 60000)} min`;
  else if (abs < 86400000) {
    const total = Math.round(abs / 60000);
    const hours = Math.floor(total / 60);
    const minutes = total % 60;
    text = minutes ? `${hours} h ${minutes} min` : `${hours} h`;
  } else text = `${Math.round(abs / 86400000)} d`;
  return diff > 0 ? `in ${text}` : `${text} ago`;
}

/** Usage window keys as people say them: five_hour → "5-hour". */
export function windowLabel(key) {
  const known = {
    five_hour: "5-hour", seven_day: "7-day", seven_day_opus: "7-day Opus", seven_day_sonnet: "7-day Sonnet",
    time_limit: "Time limit", tokens_limit: "Token limit", daily: "Daily", monthly: "Monthly",
  };
  return known[key] ?? key.replaceAll("_", " ");
}

/** Each account type's label ("Claude subscription") by the provider id accounts store, from
 * /api/providers' list, so the dashboard names a type as the CLI and the API do. */
export function typeLabelsOf(providers) {
  return new Map(providers.map((p) => [p.provider, p.displayName]));
}

/** The API's name for requests that no account served, as people say it. */
export const NO_ACCOUNT = "no_account";

/** An account name from the statistics APIs, with "no_account" in words. */
export function accountLabel(name) {
  return name === NO_ACCOUNT ? "no account available" : (name ?? "–");
}

/** The periods the analytics and usage APIs take (`range`), as every period picker offers them. */
export const PERIODS = [
  ["1h", "Last hour"], ["6h", "Last 6 hours"], ["24h", "Last 24 hours"], ["7d", "Last 7 days"], ["30d", "Last 30 days"],
];
export const DEFAULT_PERIOD = "24h";
