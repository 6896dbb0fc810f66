// The web inbox. It owns no state: every view is drawn from what /api answered last,
// and live changes come only from /api/events (EventSource, with the HttpOnly cookie;
// the browser reconnects by itself and resumes with Last-Event-ID). Mail data only
// ever reaches the DOM as text (textContent, text nodes); a mail's HTML is shown by
// the sanitised /html document in <iframe sandbox> without scripts or same-origin.

import { api, apiBytes, ApiError, serverNow } from "./api.js";
import {
  formatAddress,
  formatBytes,
  formatFullDate,
  formatListDate,
  formatShortDate,
  formatTimeLeft,
} from "./format.js";
import { linkifyInto } from "./linkify.js";

const PAGE_SIZE = 50;
const RAW_SHOWN_CHARS = 1_000_000;
const MAILBOX_REFRESH_MS = 60_000;
const LIVE_RETRY_MAX_MS = 30_000;
const THEME_KEY = "tmpmail.theme";
const NOTIFY_KEY = "tmpmail.notify";

const root = document.documentElement;
const byId = (id) => document.getElementById(id);
const el = {
  address: byId("address"),
  copy: byId("copy-address"),
  copyLabel: document.querySelector("#copy-address .copy-label"),
  timeLeft: byId("time-left"),
  expiryAt: byId("expiry-at"),
  extend: byId("extend"),
  extendHint: byId("extend-hint"),
  usernameForm: byId("username-form"),
  username: byId("username"),
  domain: byId("domain"),
  shuffle: byId("shuffle"),
  formError: byId("form-error"),
  recent: byId("recent"),
  recentCount: byId("recent-count"),
  recentList: byId("recent-list"),
  mailboxCard: byId("mailbox-card"),
  ended: byId("mailbox-state"),
  endedTitle: byId("ended-title"),
  endedText: byId("ended-text"),
  endedRecent: byId("ended-recent"),
  endedRecentList: byId("ended-recent-list"),
  newAddress: byId("new-address"),
  inbox: byId("inbox"),
  list: byId("message-list"),
  empty: byId("empty"),
  loadOlder: byId("load-older"),
  unreadBadge: byId("unread-badge"),
  inboxHeading: byId("inbox-heading"),
  deleteAll: byId("delete-all"),
  live: document.querySelector("[data-testid=live-status]"),
  liveText: document.querySelector("[data-testid=live-status] .live-text"),
  themeToggle: document.querySelector("[data-testid=theme-toggle]"),
  notifyToggle: document.querySelector("[data-testid=notify-toggle]"),
  readerEmpty: byId("reader-empty"),
  message: byId("message"),
  subject: byId("message-subject"),
  from: byId("message-from"),
  to: byId("message-to"),
  ccRow: byId("message-cc-row"),
  cc: byId("message-cc"),
  date: byId("message-date"),
  bodySwitch: byId("body-switch"),
  showHtml: byId("show-html"),
  showText: byId("show-text"),
  remoteBar: byId("remote-bar"),
  remoteCount: byId("remote-count"),
  remoteText: byId("remote-text"),
  loadRemote: byId("load-remote"),
  body: byId("message-body"),
  raw: byId("raw"),
  rawSource: byId("raw-source"),
  viewRaw: byId("view-raw"),
  downloadEml: byId("download-eml"),
  deleteMessage: byId("delete-message"),
  closeMessage: byId("close-message"),
  attachments: byId("attachments"),
  attachmentList: byId("attachment-list"),
  toast: byId("toast"),
  announcer: byId("announcer"),
  appError: byId("app-error"),
  appErrorText: byId("app-error-text"),
  appRetry: byId("app-retry"),
};
const templates = {
  item: byId("message-item-template"),
  attachment: byId("attachment-template"),
  frame: byId("frame-template"),
};

// What the server last said: a cache to draw from, never a source of truth.
const view = {
  mailbox: null, // GET /api/mailbox
  domains: [],
  messages: new Map(), // id -> summary (list, events, PATCH)
  nextCursor: null,
  open: null, // GET /api/messages/{id} of the message being read
  openId: null,
  remoteLoaded: false,
  bodyMode: "html", // "html" | "text": which body of a message with both is shown
  ended: false,
};
const items = new Map(); // id -> <li> of the list

// --------------------------------------------------------------------- small helpers

function announce(text) {
  el.announcer.textContent = "";
  // A fresh text node after a tick, so that the same words are announced again.
  setTimeout(() => {
    el.announcer.textContent = text;
  }, 50);
}

let toastTimer = 0;
function toast(text, { error = false } = {}) {
  el.toast.textContent = text;
  el.toast.classList.toggle("is-error", error);
  el.toast.classList.add("is-shown");
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => el.toast.classList.remove("is-shown"), 3500);
}

function messagePath(id, rest = "") {
  return `/api/messages/${encodeURIComponent(id)}${rest}`;
}

function senderOf(summary) {
  return summary.from_name || summary.from_address || summary.sender || "Unknown sender";
}

function sentence(text) {
  return text ? text.charAt(0).toUpperCase() + text.slice(1) : "";
}

function errorText(error, action) {
  if (!(error instanceof ApiError)) return `Could not ${action}.`;
  if (error.status === 0) return error.message;
  if (error.status === 429) {
    const wait = error.retryAfter ? ` Try again in ${error.retryAfter} s.` : " Try again shortly.";
    return `Too many requests from your network.${wait}`;
  }
  if (error.status >= 500) return `The server could not ${action} right now. Try again shortly.`;
  return sentence(error.message) || `Could not ${action}.`;
}

/** Whether ``error`` means this browser's mailbox has ended (and the view was switched). */
function handleEnded(error) {
  if (!(error instanceof ApiError) || error.status !== 401) return false;
  if (error.code === "mailbox_expired") showEnded("expired");
  else if (error.code === "mailbox_deleted") showEnded("deleted");
  else {
    // The cookie is gone (deleted from another tab, or cleared): the address ended here.
    const expired = view.mailbox && Date.parse(view.mailbox.expires_at) <= serverNow();
    showEnded(expired ? "expired" : "deleted");
  }
  return true;
}

// Other tabs of this browser share the cookie: tell them when the mailbox changes.
const channel = "BroadcastChannel" in window ? new BroadcastChannel("tmpmail") : null;
function tellOtherTabs(what) {
  channel?.postMessage({ what });
}

// --------------------------------------------------------------------- theme

function storedTheme() {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === "light" || value === "dark" ? value : null;
  } catch (_) {
    return null;
  }
}

const systemDark = matchMedia("(prefers-color-scheme: dark)");

function currentTheme() {
  return root.dataset.theme === "dark" ? "dark" : "light";
}

function applyTheme(theme) {
  const changed = theme !== currentTheme();
  root.dataset.theme = theme;
  el.themeToggle.setAttribute("aria-pressed", String(theme === "dark"));
  if (changed && view.open && view.open.has_html && view.bodyMode === "html") showBody();
}

function wireTheme() {
  applyTheme(storedTheme() ?? (systemDark.matches ? "dark" : "light"));
  el.themeToggle.addEventListener("click", () => {
    const next = currentTheme() === "dark" ? "light" : "dark";
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch (_) {
      // A display preference only: without storage it lasts until the reload.
    }
    applyTheme(next);
  });
  systemDark.addEventListener("change", (event) => {
    if (!storedTheme()) applyTheme(event.matches ? "dark" : "light");
  });
}

// --------------------------------------------------------------------- notifications

function notificationsOn() {
  try {
    return (
      "Notification" in window &&
      Notification.permission === "granted" &&
      localStorage.getItem(NOTIFY_KEY) === "on"
    );
  } catch (_) {
    return false;
  }
}

function drawNotifyToggle() {
  el.notifyToggle.setAttribute("aria-pressed", String(notificationsOn()));
}

function wireNotifications() {
  if (!("Notification" in window)) return;
  el.notifyToggle.hidden = false;
  drawNotifyToggle();
  el.notifyToggle.addEventListener("click", async () => {
    if (notificationsOn()) {
      localStorage.setItem(NOTIFY_KEY, "off");
      drawNotifyToggle();
      toast("Desktop notifications off");
      return;
    }
    // Asked only here, on the reader's click.
    const permission =
      Notification.permission === "default"
        ? await Notification.requestPermission()
        : Notification.permission;
    if (permission !== "granted") {
      toast("Notifications are blocked for this site in your browser's settings", { error: true });
      drawNotifyToggle();
      return;
    }
    localStorage.setItem(NOTIFY_KEY, "on");
    drawNotifyToggle();
    toast("Desktop notifications on: you are told about new mail while this tab is hidden");
  });
}

function notifyNewMail(summary) {
  if (!notificationsOn() || document.visibilityState === "visible") return;
  const notification = new Notification(summary.subject || "(no subject)", {
    body: `From ${senderOf(summary)}`,
    icon: "/assets/icon.svg",
    tag: summary.id,
  });
  notification.addEventListener("click", () => {
    window.focus();
    openMessage(summary.id);
    notification.close();
  });
}

// --------------------------------------------------------------------- the mailbox

let countdownTimer = 0;

function drawCountdown() {
  const mailbox = view.mailbox;
  if (!mailbox) return;
  const left = Date.parse(mailbox.expires_at) - serverNow();
  el.timeLeft.textContent = left > 0 ? `Expires in ${formatTimeLeft(left)}` : "Expired";
  if (left <= 0 && !view.ended) {
    clearInterval(countdownTimer);
    refreshMailbox();
  }
}

function drawMailbox(mailbox) {
  const changed = view.mailbox?.address !== mailbox.address;
  view.mailbox = mailbox;
  view.ended = false;
  el.ended.hidden = true;
  el.mailboxCard.hidden = false;
  el.inbox.hidden = false;
  el.address.textContent = mailbox.address;
  el.copy.disabled = false;
  el.expiryAt.textContent = `· ${formatShortDate(mailbox.expires_at)}`;
  el.extend.disabled = !mailbox.can_extend;
  el.extend.textContent = mailbox.can_extend
    ? `Extend to ${formatShortDate(mailbox.extend_until)}`
    : "Extend";
  el.extendHint.textContent = mailbox.can_extend ? "" : sentence(mailbox.reason_message || "");
  const domain = mailbox.address.split("@")[1];
  if (changed && view.domains.includes(domain)) el.domain.value = domain;
  clearInterval(countdownTimer);
  drawCountdown();
  countdownTimer = setInterval(drawCountdown, 1000);
  drawTitle();
  return changed;
}

/** Show the mailbox the cookie names now; a new one switches the whole view. */
async function refreshMailbox({ createIfNone = false } = {}) {
  let mailbox;
  try {
    mailbox = await api("GET", "/api/mailbox");
  } catch (error) {
    if (createIfNone && error instanceof ApiError && error.code === "unauthorized") {
      await createMailbox({}, { quiet: true });
      return;
    }
    if (handleEnded(error)) return;
    if (!view.mailbox) showAppError(errorText(error, "open your mailbox"));
    return;
  }
  hideAppError();
  if (drawMailbox(mailbox)) await switchedMailbox();
}

async function switchedMailbox() {
  closeMessage({ restoreFocus: false });
  view.messages.clear();
  view.nextCursor = null;
  drawList();
  connectLive();
  await Promise.all([refreshList(), refreshRecent()]);
}

async function createMailbox(body, { quiet = false } = {}) {
  setFormBusy(true);
  showFormError("");
  try {
    const created = await api("POST", "/api/mailboxes", body);
    tellOtherTabs("mailbox");
    if (!quiet) {
      el.username.value = "";
      announce(`Your new address is ${created.address}`);
      toast(`New address: ${created.address}`);
    }
    await refreshMailbox();
    return true;
  } catch (error) {
    if (quiet) showAppError(errorText(error, "create an address"));
    else showFormError(errorText(error, "create that address"), body.username !== undefined);
    return false;
  } finally {
    setFormBusy(false);
  }
}

function setFormBusy(busy) {
  for (const control of [el.shuffle, el.usernameForm.querySelector("button[type=submit]")]) {
    control.disabled = busy;
  }
  el.usernameForm.setAttribute("aria-busy", String(busy));
}

function showFormError(text, onUsername = false) {
  el.formError.textContent = text;
  if (onUsername && text) el.username.setAttribute("aria-invalid", "true");
  else el.username.removeAttribute("aria-invalid");
}

async function loadDomains() {
  try {
    const { domains } = await api("GET", "/api/domains");
    view.domains = domains;
    el.domain.replaceChildren(
      ...domains.map((domain) => {
        const option = document.createElement("option");
        option.value = domain;
        option.textContent = domain;
        return option;
      }),
    );
    const current = view.mailbox?.address.split("@")[1];
    if (current && domains.includes(current)) el.domain.value = current;
  } catch (_) {
    // The select stays empty: the server then picks the domain.
  }
}

function recentEntry(entry, { onEnded = false } = {}) {
  const li = document.createElement("li");
  li.className = "recent-item";
  const address = document.createElement("span");
  address.className = "recent-address";
  address.textContent = entry.address;
  const left = document.createElement("span");
  left.className = "recent-left";
  left.textContent = formatTimeLeft(Date.parse(entry.expires_at) - serverNow());
  if (entry.current && !onEnded) {
    li.classList.add("is-current");
    li.setAttribute("aria-current", "true");
    const badge = document.createElement("span");
    badge.className = "badge";
    badge.textContent = "Current";
    li.append(address, badge, left);
    return li;
  }
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button button-small";
  button.textContent = "Use";
  button.setAttribute("aria-label", `Use ${entry.address}`);
  button.addEventListener("click", () => switchTo(entry.address));
  li.append(address, left, button);
  return li;
}

async function refreshRecent() {
  let mailboxes;
  try {
    ({ mailboxes } = await api("GET", "/api/mailboxes"));
  } catch (_) {
    return;
  }
  el.recentList.replaceChildren(...mailboxes.map((entry) => recentEntry(entry)));
  el.recentCount.textContent = mailboxes.length > 1 ? `(${mailboxes.length})` : "";
  el.recent.hidden = mailboxes.length < 2;
  const others = mailboxes.filter((entry) => !entry.current);
  el.endedRecentList.replaceChildren(
    ...others.map((entry) => recentEntry(entry, { onEnded: true })),
  );
  el.endedRecent.hidden = others.length === 0;
}

async function switchTo(address) {
  try {
    await api("POST", "/api/mailboxes/current", { address });
  } catch (error) {
    toast(errorText(error, "switch to that address"), { error: true });
    await refreshRecent();
    return;
  }
  tellOtherTabs("mailbox");
  announce(`Switched to ${address}`);
  toast(`Switched to ${address}`);
  await refreshMailbox();
}

function showEnded(state) {
  view.ended = true;
  disconnectLive();
  setLive("closed");
  clearInterval(countdownTimer);
  closeMessage({ restoreFocus: false });
  const address = view.mailbox?.address;
  el.ended.dataset.state = state;
  el.endedTitle.textContent =
    state === "expired" ? "This address has expired" : "This address was deleted";
  el.endedText.textContent =
    state === "expired"
      ? `${address ?? "Your address"} no longer receives mail, and its messages are gone.`
      : `${address ?? "Your address"} was deleted, with its messages. It no longer receives mail.`;
  el.ended.hidden = false;
  el.mailboxCard.hidden = true;
  el.inbox.hidden = true;
  document.title = "tmpmail";
  refreshRecent();
  el.endedTitle.focus();
}

async function extendMailbox() {
  el.extend.disabled = true;
  try {
    const mailbox = await api("POST", "/api/mailbox/extend");
    drawMailbox(mailbox);
    toast(`Extended: it now expires ${formatFullDate(mailbox.expires_at)}`);
    announce(`Extended until ${formatFullDate(mailbox.expires_at)}`);
  } catch (error) {
    if (handleEnded(error)) return;
    toast(errorText(error, "extend the address"), { error: true });
    await refreshMailbox();
  }
}

async function copyAddress() {
  const address = view.mailbox?.address;
  if (!address) return;
  let copied = false;
  try {
    await navigator.clipboard.writeText(address);
    copied = true;
  } catch (_) {
    // Not a secure context, or no permission: the selection way.
    const area = document.createElement("textarea");
    area.value = address;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.append(area);
    area.select();
    copied = document.execCommand("copy");
    area.remove();
  }
  if (!copied) {
    toast("Copying failed: select the address and copy it yourself", { error: true });
    return;
  }
  el.copyLabel.textContent = "Copied";
  el.copy.classList.add("is-done");
  announce("Address copied");
  setTimeout(() => {
    el.copyLabel.textContent = "Copy";
    el.copy.classList.remove("is-done");
  }, 2000);
}

// --------------------------------------------------------------------- live delivery

let source = null;
let liveRetryTimer = 0;
let liveRetryMs = 1000;

function setLive(state) {
  el.live.dataset.state = state;
  el.liveText.textContent = { open: "Live", connecting: "Connecting…", closed: "Offline" }[state];
  el.live.title =
    state === "open"
      ? "Connected: new mail appears as it arrives"
      : state === "connecting"
        ? "Connecting to live delivery…"
        : "Not connected: new mail appears once the connection is back";
}

function disconnectLive() {
  clearTimeout(liveRetryTimer);
  if (source) {
    source.close();
    source = null;
  }
}

function connectLive() {
  disconnectLive();
  if (view.ended) return;
  setLive("connecting");
  const events = new EventSource("/api/events");
  source = events;
  events.addEventListener("open", () => {
    if (source !== events) return;
    liveRetryMs = 1000;
    setLive("open");
    // Whatever arrived while we were not subscribed (or before the first event id).
    refreshList();
  });
  events.addEventListener("message", (event) => {
    if (source !== events) return;
    let summary;
    try {
      summary = JSON.parse(event.data);
    } catch (_) {
      return;
    }
    receive(summary);
  });
  events.addEventListener("error", () => {
    if (source !== events) return;
    if (events.readyState === EventSource.CONNECTING) {
      setLive("connecting"); // the browser retries by itself, with Last-Event-ID
      return;
    }
    // Refused (401, 429, 503): find out whether the mailbox is still there, then retry.
    events.close();
    source = null;
    setLive("closed");
    liveRetryTimer = setTimeout(async () => {
      await refreshMailbox();
      if (!view.ended && !source) connectLive();
    }, liveRetryMs);
    liveRetryMs = Math.min(liveRetryMs * 2, LIVE_RETRY_MAX_MS);
  });
}

let mailboxRefreshSoon = 0;
function receive(summary) {
  const known = view.messages.has(summary.id);
  view.messages.set(summary.id, { seen: false, ...view.messages.get(summary.id), ...summary });
  drawList();
  if (known) return;
  announce(`New message from ${senderOf(summary)}: ${summary.subject || "no subject"}`);
  notifyNewMail(summary);
  // The count may now allow an extension.
  clearTimeout(mailboxRefreshSoon);
  mailboxRefreshSoon = setTimeout(refreshMailbox, 500);
}

// --------------------------------------------------------------------- the list

/** The newest page from the server; what it covers replaces what we had drawn. */
async function refreshList() {
  const address = view.mailbox?.address;
  if (!address) return;
  let page;
  try {
    page = await api("GET", `/api/messages?limit=${PAGE_SIZE}`);
  } catch (error) {
    if (!handleEnded(error)) toast(errorText(error, "load your messages"), { error: true });
    return;
  }
  if (view.mailbox?.address !== address) return;
  const oldest = page.next_cursor ? Math.min(...page.messages.map((m) => m.seq)) : -Infinity;
  const fresh = new Set(page.messages.map((m) => m.id));
  for (const [id, summary] of view.messages) {
    if (summary.seq >= oldest && !fresh.has(id)) view.messages.delete(id);
  }
  for (const summary of page.messages) view.messages.set(summary.id, summary);
  if (view.nextCursor === null || oldest === -Infinity) view.nextCursor = page.next_cursor;
  drawList();
  if (view.openId && !view.messages.has(view.openId)) closeMessage();
}

async function loadOlder() {
  if (!view.nextCursor) return;
  el.loadOlder.disabled = true;
  try {
    const page = await api(
      "GET",
      `/api/messages?limit=${PAGE_SIZE}&cursor=${encodeURIComponent(view.nextCursor)}`,
    );
    for (const summary of page.messages) view.messages.set(summary.id, summary);
    view.nextCursor = page.next_cursor;
    drawList();
  } catch (error) {
    if (!handleEnded(error)) toast(errorText(error, "load older messages"), { error: true });
  } finally {
    el.loadOlder.disabled = false;
  }
}

function drawItem(li, summary) {
  const button = li.firstElementChild;
  button.dataset.id = summary.id;
  button.dataset.seen = String(Boolean(summary.seen));
  li.querySelector(".item-state").textContent = summary.seen ? "" : "Unread, ";
  const from = li.querySelector(".item-from");
  from.textContent = senderOf(summary);
  const subject = li.querySelector(".item-subject");
  subject.textContent = summary.subject || "(no subject)";
  subject.classList.toggle("is-missing", !summary.subject);
  li.querySelector(".item-preview").textContent = summary.preview || "";
  li.querySelector(".item-clip").hidden = !summary.has_attachments;
  const time = li.querySelector(".item-time");
  time.dateTime = summary.received_at;
  time.textContent = formatListDate(summary.received_at);
  if (summary.id === view.openId) button.setAttribute("aria-current", "true");
  else button.removeAttribute("aria-current");
}

function newItem(summary) {
  const li = templates.item.content.firstElementChild.cloneNode(true);
  li.firstElementChild.addEventListener("click", () => openMessage(summary.id));
  items.set(summary.id, li);
  return li;
}

function drawList() {
  const ordered = [...view.messages.values()].sort((a, b) => b.seq - a.seq);
  let cursor = el.list.firstElementChild;
  for (const summary of ordered) {
    const li = items.get(summary.id) ?? newItem(summary);
    drawItem(li, summary);
    if (li === cursor) cursor = cursor.nextElementSibling;
    else el.list.insertBefore(li, cursor);
  }
  while (cursor) {
    const next = cursor.nextElementSibling;
    items.delete(cursor.firstElementChild.dataset.id);
    cursor.remove();
    cursor = next;
  }
  const count = ordered.length;
  el.empty.hidden = count > 0;
  el.list.hidden = count === 0;
  el.deleteAll.disabled = count === 0;
  el.loadOlder.hidden = !view.nextCursor;
  const unread = ordered.filter((m) => !m.seen).length;
  el.unreadBadge.hidden = unread === 0;
  el.unreadBadge.textContent = `${unread} unread`;
  drawTitle();
}

function drawTitle() {
  if (view.ended || !view.mailbox) return;
  const unread = [...view.messages.values()].filter((m) => !m.seen).length;
  document.title = `${unread ? `(${unread}) ` : ""}${view.mailbox.address} · tmpmail`;
}

function moveInList(from, step) {
  const buttons = [...el.list.querySelectorAll("[data-testid=message-item]")];
  const index = buttons.indexOf(from);
  const next = buttons[index + step];
  if (next) next.focus();
}

async function deleteAll() {
  el.deleteAll.disabled = true;
  try {
    await api("DELETE", "/api/messages");
  } catch (error) {
    if (!handleEnded(error)) toast(errorText(error, "delete your messages"), { error: true });
    drawList();
    return;
  }
  closeMessage({ restoreFocus: false });
  view.messages.clear();
  view.nextCursor = null;
  drawList();
  tellOtherTabs("messages");
  toast("All messages deleted");
  await refreshList();
  el.inboxHeading.focus();
}

// --------------------------------------------------------------------- one message

function addressesInto(node, addresses) {
  const parts = [];
  addresses.forEach((entry, index) => {
    if (index) parts.push(", ");
    if (entry.name && entry.address && entry.name !== entry.address) {
      const name = document.createElement("span");
      name.className = "person";
      name.textContent = entry.name;
      const address = document.createElement("span");
      address.className = "person-address";
      address.textContent = ` <${entry.address}>`;
      parts.push(name, address);
    } else {
      parts.push(formatAddress(entry));
    }
  });
  node.replaceChildren(...parts);
}

async function openMessage(id) {
  view.openId = id;
  view.open = null;
  document.body.dataset.view = "message";
  for (const [itemId, li] of items) {
    const button = li.firstElementChild;
    if (itemId === id) button.setAttribute("aria-current", "true");
    else button.removeAttribute("aria-current");
  }
  el.readerEmpty.hidden = true;
  el.message.hidden = false;
  el.message.setAttribute("aria-busy", "true");
  let message;
  try {
    message = await api("GET", messagePath(id));
  } catch (error) {
    if (view.openId !== id) return;
    el.message.removeAttribute("aria-busy");
    if (handleEnded(error)) return;
    closeMessage();
    if (error instanceof ApiError && error.status === 404) {
      toast("That message is gone", { error: true });
      refreshList();
    } else {
      toast(errorText(error, "open the message"), { error: true });
    }
    return;
  }
  if (view.openId !== id) return;
  drawMessage(message);
  el.subject.focus({ preventScroll: true });
  el.message.scrollIntoView?.({ block: "nearest" });
  if (!message.seen) markSeen(id);
}

async function markSeen(id) {
  try {
    const summary = await api("PATCH", messagePath(id), { seen: true });
    view.messages.set(id, { ...view.messages.get(id), ...summary });
    drawList();
    tellOtherTabs("messages");
  } catch (_) {
    // It stays unread in the list; the next refresh shows the truth.
  }
}

function drawMessage(message) {
  view.open = message;
  view.remoteLoaded = false;
  view.bodyMode = message.has_html ? "html" : "text";
  el.message.removeAttribute("aria-busy");
  el.subject.textContent = message.subject || "(no subject)";
  el.subject.classList.toggle("is-missing", !message.subject);
  const from = message.from?.length
    ? message.from
    : [{ name: message.from_name, address: message.from_address || message.sender }];
  addressesInto(el.from, from);
  addressesInto(el.to, message.to ?? []);
  el.ccRow.hidden = !message.cc?.length;
  addressesInto(el.cc, message.cc ?? []);
  const date = message.date || message.received_at;
  el.date.dateTime = date;
  el.date.textContent = formatFullDate(date);
  el.downloadEml.href = messagePath(message.id, "/raw");
  el.bodySwitch.hidden = !(message.has_html && message.text);
  showRaw(false);
  drawAttachments(message);
  showBody();
}

function drawAttachments(message) {
  // Inline parts are shown by the HTML; without HTML they are downloads like the rest.
  const listed = (message.attachments ?? []).filter((a) => !a.inline || !message.has_html);
  el.attachments.hidden = listed.length === 0;
  el.attachmentList.replaceChildren(
    ...listed.map((attachment) => {
      const li = templates.attachment.content.firstElementChild.cloneNode(true);
      const link = li.querySelector("a");
      link.href = messagePath(message.id, `/attachments/${encodeURIComponent(attachment.id)}`);
      li.querySelector(".attachment-name").textContent =
        attachment.filename || `attachment (${attachment.content_type})`;
      li.querySelector(".attachment-size").textContent = formatBytes(attachment.size);
      return li;
    }),
  );
}

function drawRemoteBar(message) {
  const count = message.remote_resources ?? 0;
  const shown =
    view.bodyMode === "html" && message.has_html && count > 0 && !view.remoteLoaded && el.raw.hidden;
  el.remoteBar.hidden = !shown;
  if (!shown) return;
  el.remoteCount.textContent = `${count} remote ${count === 1 ? "resource" : "resources"} blocked.`;
  el.remoteText.textContent =
    "Loading them tells the sender that you opened this mail, and from where.";
}

/** Draw the body the reader asked for: the sanitised HTML in its frame, or the text. */
async function showBody() {
  const message = view.open;
  if (!message) return;
  el.showHtml.setAttribute("aria-pressed", String(view.bodyMode === "html"));
  el.showText.setAttribute("aria-pressed", String(view.bodyMode === "text"));
  drawRemoteBar(message);
  if (view.bodyMode === "text" || !message.has_html) {
    const text = document.createElement("div");
    text.className = "message-text";
    text.dataset.testid = "message-text";
    if (message.text) linkifyInto(text, message.text);
    else {
      text.classList.add("is-missing");
      text.textContent = "This message has no text.";
    }
    el.body.replaceChildren(text);
    return;
  }
  const theme = currentTheme();
  const id = message.id;
  let signed;
  try {
    const query = `?remote=${view.remoteLoaded ? 1 : 0}&theme=${theme}`;
    signed = await api("GET", messagePath(id, `/html-url${query}`));
  } catch (error) {
    if (handleEnded(error)) return;
    const failed = document.createElement("p");
    failed.className = "message-text is-missing";
    failed.textContent = errorText(error, "show this message");
    el.body.replaceChildren(failed);
    return;
  }
  if (view.open?.id !== id || view.bodyMode !== "html") return;
  // A new frame each time: changing a frame's src would add to the tab's history.
  const frame = templates.frame.content.firstElementChild.cloneNode(true);
  // Mail that supports dark is served dark in a dark page; other mail keeps its own
  // light canvas (the document says so too, see api/sanitize.py color_scheme).
  const dark = theme === "dark" && Boolean(message.has_dark_mode);
  frame.classList.add(dark ? "is-dark" : "is-light");
  frame.title = `Message content: ${message.subject || "no subject"}`;
  frame.src = signed.url;
  el.body.replaceChildren(frame);
}

async function showRaw(shown) {
  el.viewRaw.setAttribute("aria-pressed", String(shown));
  el.viewRaw.querySelector(".tool-label").textContent = shown ? "Message" : "Source";
  el.raw.hidden = !shown;
  el.body.hidden = shown;
  if (view.open) drawRemoteBar(view.open);
  if (!shown) {
    el.rawSource.textContent = "";
    return;
  }
  const id = view.open?.id;
  el.rawSource.textContent = "Loading the source…";
  let bytes;
  try {
    bytes = await apiBytes(messagePath(id, "/raw"));
  } catch (error) {
    if (handleEnded(error)) return;
    el.rawSource.textContent = errorText(error, "load the source");
    return;
  }
  if (view.open?.id !== id) return;
  const text = new TextDecoder("utf-8").decode(bytes);
  el.rawSource.textContent =
    text.length > RAW_SHOWN_CHARS
      ? `${text.slice(0, RAW_SHOWN_CHARS)}\n\n[… cut here: download the .eml for all of it]`
      : text;
}

function closeMessage({ restoreFocus = true } = {}) {
  const id = view.openId;
  view.openId = null;
  view.open = null;
  document.body.dataset.view = "inbox";
  el.message.hidden = true;
  el.readerEmpty.hidden = false;
  el.body.replaceChildren();
  el.rawSource.textContent = "";
  for (const li of items.values()) li.firstElementChild.removeAttribute("aria-current");
  if (restoreFocus) {
    const button = id && items.get(id)?.firstElementChild;
    if (button) button.focus();
    else el.inboxHeading.focus();
  }
}

async function deleteMessage() {
  const id = view.openId;
  if (!id) return;
  const buttons = [...el.list.querySelectorAll("[data-testid=message-item]")];
  const index = buttons.findIndex((b) => b.dataset.id === id);
  const neighbour = buttons[index + 1] ?? buttons[index - 1];
  el.deleteMessage.disabled = true;
  try {
    await api("DELETE", messagePath(id));
  } catch (error) {
    if (!handleEnded(error) && !(error instanceof ApiError && error.status === 404)) {
      toast(errorText(error, "delete the message"), { error: true });
      return;
    }
  } finally {
    el.deleteMessage.disabled = false;
  }
  if (view.ended) return;
  closeMessage({ restoreFocus: false });
  view.messages.delete(id);
  drawList();
  tellOtherTabs("messages");
  toast("Message deleted");
  if (neighbour?.isConnected) neighbour.focus();
  else el.inboxHeading.focus();
  refreshList();
}

// --------------------------------------------------------------------- wiring

function showAppError(text) {
  el.appErrorText.textContent = text;
  el.appError.hidden = false;
}

function hideAppError() {
  el.appError.hidden = true;
}

function wire() {
  wireTheme();
  wireNotifications();
  el.copy.addEventListener("click", copyAddress);
  el.extend.addEventListener("click", extendMailbox);
  el.shuffle.addEventListener("click", () => createMailbox({ domain: el.domain.value || undefined }));
  el.usernameForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const username = el.username.value.trim();
    if (!username) {
      showFormError("Type the name you want before the @.", true);
      el.username.focus();
      return;
    }
    createMailbox({ username, domain: el.domain.value || undefined }).then((done) => {
      if (!done) el.username.focus();
    });
  });
  el.username.addEventListener("input", () => showFormError(""));
  el.newAddress.addEventListener("click", () => createMailbox({}));
  el.deleteAll.addEventListener("click", deleteAll);
  el.loadOlder.addEventListener("click", loadOlder);
  el.closeMessage.addEventListener("click", () => closeMessage());
  el.deleteMessage.addEventListener("click", deleteMessage);
  el.viewRaw.addEventListener("click", () =>
    showRaw(el.viewRaw.getAttribute("aria-pressed") !== "true"),
  );
  el.loadRemote.addEventListener("click", () => {
    view.remoteLoaded = true;
    showBody();
    el.subject.focus({ preventScroll: true });
    announce("Remote content loaded for this message");
  });
  el.showHtml.addEventListener("click", () => {
    view.bodyMode = "html";
    showBody();
  });
  el.showText.addEventListener("click", () => {
    view.bodyMode = "text";
    showBody();
  });
  el.appRetry.addEventListener("click", () => start());
  el.list.addEventListener("keydown", (event) => {
    const item = event.target.closest?.("[data-testid=message-item]");
    if (!item) return;
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      moveInList(item, event.key === "ArrowDown" ? 1 : -1);
    }
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || !view.openId) return;
    if (event.target.closest?.("select, input")) return;
    event.preventDefault();
    closeMessage();
  });
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState !== "visible" || view.ended || !view.mailbox) return;
    refreshMailbox();
    if (!source) connectLive();
  });
  window.addEventListener("online", () => {
    if (!view.ended && view.mailbox && !source) connectLive();
  });
  channel?.addEventListener("message", ({ data }) => {
    if (data?.what === "mailbox") refreshMailbox().then(refreshRecent);
    else if (data?.what === "messages") refreshList();
  });
  setInterval(() => {
    if (!view.ended && view.mailbox) refreshMailbox();
  }, MAILBOX_REFRESH_MS);
}

async function start() {
  hideAppError();
  await Promise.all([loadDomains(), refreshMailbox({ createIfNone: true })]);
  document.body.dataset.ready = "true";
}

wire();
start();
