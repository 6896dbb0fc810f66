// The one way the page talks to /api: JSON in and out, the one error shape, and the
// server's clock (from each response's Date header) for every countdown.

/** An answer other than 2xx, in the API's error shape: {"error": {"code", "message"}}. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

// The server's clock minus ours lies in [low, high]: a response dated D (whole seconds)
// was made between our send and our receipt. Intersecting every answer's bounds
// narrows it; an empty intersection (our clock jumped) starts afresh.
let skewLow = -Infinity;
let skewHigh = Infinity;

function noteServerClock(response, sentAt) {
  const date = Date.parse(response.headers.get("Date") ?? "");
  if (Number.isNaN(date)) return;
  const receivedAt = Date.now();
  const low = date - receivedAt;
  const high = date + 1000 - sentAt;
  let nextLow = Math.max(skewLow, low);
  let nextHigh = Math.min(skewHigh, high);
  if (nextLow > nextHigh) {
    nextLow = low;
    nextHigh = high;
  }
  skewLow = nextLow;
  skewHigh = nextHigh;
}

/** Now, by the server's clock (ms since the epoch). */
export function serverNow() {
  const skew = Number.isFinite(skewLow) ? (skewLow + skewHigh) / 2 : 0;
  return Date.now() + skew;
}

/** One request; resolves to the JSON answer (null for 204), throws ApiError. */
export async function api(method, path, body = undefined) {
  const init = {
    method,
    headers: { Accept: "application/json" },
    credentials: "same-origin",
    cache: "no-store",
  };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await send(path, init);
  if (response.status === 204) return null;
  return response.json();
}

/** One request whose body is bytes (the raw message); throws ApiError. */
export async function apiBytes(path) {
  const response = await send(path, { credentials: "same-origin", cache: "no-store" });
  return response.arrayBuffer();
}

async function send(path, init) {
  const sentAt = Date.now();
  let response;
  try {
    response = await fetch(path, init);
  } catch (_) {
    throw new ApiError(0, "network", "The server cannot be reached. Check your connection.");
  }
  noteServerClock(response, sentAt);
  if (!response.ok) throw await errorOf(response);
  return response;
}

async function errorOf(response) {
  let detail = null;
  try {
    detail = (await response.json())?.error ?? null;
  } catch (_) {
    detail = null;
  }
  const retryAfter = Number.parseInt(response.headers.get("Retry-After") ?? "", 10);
  return new ApiError(
    response.status,
    detail?.code ?? `http_${response.status}`,
    detail?.message ?? (response.statusText || `HTTP ${response.status}`),
    Number.isFinite(retryAfter) ? retryAfter : null,
  );
}
