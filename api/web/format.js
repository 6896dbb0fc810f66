// Pure formatting: sizes, times and addresses as people read them. No DOM.

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

/** "1.2 MB", "12 KB", "512 bytes". */
export function formatBytes(bytes) {
  if (!Number.isFinite(bytes) || bytes < 0) return "";
  if (bytes < 1024) return plural(bytes, "byte");
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  const digits = value < 10 ? 1 : 0;
  return `${value.toFixed(digits)} ${units[unit]}`;
}

/** How long is left, in words: "14 days 23 hours", "5 hours 12 minutes", "4 min 09 s". */
export function formatTimeLeft(ms) {
  if (ms <= 0) return "Expired";
  if (ms >= DAY) {
    const days = Math.floor(ms / DAY);
    const hours = Math.floor((ms % DAY) / HOUR);
    return hours ? `${plural(days, "day")} ${plural(hours, "hour")}` : plural(days, "day");
  }
  if (ms >= HOUR) {
    const hours = Math.floor(ms / HOUR);
    const minutes = Math.floor((ms % HOUR) / MINUTE);
    return `${plural(hours, "hour")} ${plural(minutes, "minute")}`;
  }
  const minutes = Math.floor(ms / MINUTE);
  const seconds = Math.floor((ms % MINUTE) / 1000);
  return `${minutes} min ${String(seconds).padStart(2, "0")} s`;
}

// Intl formatters are made on first use (making one is not free) and kept.
const formatters = new Map();
function formatter(name, options) {
  let made = formatters.get(name);
  if (!made) {
    made = new Intl.DateTimeFormat(undefined, options);
    formatters.set(name, made);
  }
  return made;
}
const CLOCK = { hour: "2-digit", minute: "2-digit" };
const DATE = { day: "numeric", month: "short" };
const DATE_YEAR = { ...DATE, year: "numeric" };
const FULL = { weekday: "short", ...DATE_YEAR, ...CLOCK };

/** A list line's date: the time today, else the day (and the year when it is not this one). */
export function formatListDate(iso, now = Date.now()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const today = new Date(now);
  if (date.toDateString() === today.toDateString()) return formatter("time", CLOCK).format(date);
  if (date.getFullYear() === today.getFullYear()) return formatter("day", DATE).format(date);
  return formatter("dayYear", DATE_YEAR).format(date);
}


/** A date and time, the year only when it is not this one: "Dec 17, 12:51 AM". */
export function formatShortDate(iso, now = Date.now()) {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return "";
  const sameYear = date.getFullYear() === new Date(now).getFullYear();
  return sameYear
    ? formatter("short", { ...DATE, ...CLOCK }).format(date)
    : formatter("shortYear", { ...DATE_YEAR, ...CLOCK }).format(date);
}

/** A message's whole date: "Tue, 3 Dec 2026, 10:00". */
export function formatFullDate(iso) {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? "" : formatter("full", FULL).format(date);
}

/** "Name <address>", or the address alone. */
export function formatAddress({ name = "", address = "" }) {
  if (name && address && name !== address) return `${name} <${address}>`;
  return name || address;
}
