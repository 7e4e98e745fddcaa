// Building DOM without innerHTML: every piece of trace data reaches the page as a text node, so
// nothing a trace holds can become markup or script.

const SVG_NS = "http://www.w3.org/2000/svg";

function apply(el, attrs) {
  if (!attrs) return;
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.setAttribute("class", Array.isArray(v) ? v.filter(Boolean).join(" ") : v);
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") Object.assign(el.style, v);
    else if (k.startsWith("on") && typeof v === "function") el.addEventListener(k.slice(2), v);
    else if (k === "value" && "value" in el) el.value = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
}

/** An HTML element: `h("a", {href, class}, "text", child, [more])`. */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

/** An SVG element, same calling convention as `h`. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  apply(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

export function replace(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

/** A panel with an optional title and right-hand actions. */
export function panel(title, body, { actions = null, cls = "" } = {}) {
  return h("section", { class: ["panel", cls] },
    title ? h("div", { class: "panel-head" }, h("h2", null, title), actions) : null,
    body);
}

/** A row of key figures: [[label, value], ...]. */
export function figures(pairs) {
  return h("div", { class: "figures" },
    pairs.filter(Boolean).map(([label, value]) =>
      h("div", { class: "figure" }, h("div", { class: "label" }, label), h("div", { class: "value" }, value))));
}

/** Tabs as links (each tab has its own URL). */
export function tabs(items, current) {
  return h("nav", { class: "tabs" },
    items.map(([key, label, href]) => h("a", { href, class: key === current ? "on" : "" }, label)));
}

/** A small segmented control of links. */
export function seg(items, current) {
  return h("span", { class: "seg" },
    items.map(([key, label, href]) => h("a", { href, class: key === current ? "on" : "" }, label)));
}

export function notice(text, bad = false) {
  return h("div", { class: ["notice", bad && "bad"] }, text);
}

/** A URL with query parameters; empty values are left out. */
export function url(path, params = {}) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const qs = q.toString();
  return qs ? `${path}?${qs}` : path;
}

export const enc = encodeURIComponent;
