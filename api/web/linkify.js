// Plain text with its links made clickable, built with DOM nodes only: text stays text,
// and a link is made only for an http, https or mailto URL the URL parser accepts.

const LINK = /\b(?:https?:\/\/|mailto:|www\.)[^\s<>"'`]+|\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b/gi;
const TRAILING = ".,;:!?'\"*_~)]}>";
const PAIRS = { ")": "(", "]": "[", "}": "{" };
export const LINK_PROTOCOLS = new Set(["http:", "https:", "mailto:"]);

/** ``candidate`` without the punctuation that ends the sentence around it. */
function trim(candidate) {
  let url = candidate;
  while (url && TRAILING.includes(url.at(-1))) {
    const last = url.at(-1);
    const opening = PAIRS[last];
    if (opening && url.split(opening).length >= url.split(last).length) break;
    url = url.slice(0, -1);
  }
  return url;
}

/** The safe href for a matched piece of text, or null. */
export function hrefFor(text) {
  let candidate = text;
  if (/^www\./i.test(candidate)) candidate = `https://${candidate}`;
  else if (!/^[a-z][a-z0-9+.-]*:/i.test(candidate)) candidate = `mailto:${candidate}`;
  let url;
  try {
    url = new URL(candidate);
  } catch (_) {
    return null;
  }
  if (!LINK_PROTOCOLS.has(url.protocol)) return null;
  if (url.protocol !== "mailto:" && !url.hostname.includes(".") && url.hostname !== "localhost") {
    return null;
  }
  return url.href;
}

/** Fill ``container`` with ``text``, links as <a target=_blank rel=noopener noreferrer>. */
export function linkifyInto(container, text) {
  const fragment = document.createDocumentFragment();
  let position = 0;
  for (const match of text.matchAll(LINK)) {
    const piece = trim(match[0]);
    const href = piece ? hrefFor(piece) : null;
    if (!href) continue;
    if (match.index > position) fragment.append(text.slice(position, match.index));
    const link = document.createElement("a");
    link.href = href;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.textContent = piece;
    fragment.append(link);
    position = match.index + piece.length;
  }
  if (position < text.length) fragment.append(text.slice(position));
  container.replaceChildren(fragment);
}
