// Showing free-form values: pretty, coloured JSON and long text folded behind a "show all" button.
// Folded content is not rendered until asked for, which keeps big traces fast to draw.

import { h, replace } from "./dom.js";

const TOKEN = /("(?:\\.|[^"\\])*")(\s*:)?|\b(true|false|null)\b|(-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)|([{}[\],])/g;
const COLOUR_LIMIT = 200_000;

function coloured(text) {
  if (text.length > COLOUR_LIMIT) return [text];
  const out = [];
  let last = 0;
  for (const m of text.matchAll(TOKEN)) {
    if (m.index > last) out.push(text.slice(last, m.index));
    if (m[1] !== undefined) {
      out.push(h("span", { class: m[2] ? "j-key" : "j-str" }, m[1]));
      if (m[2]) out.push(m[2]);
    } else if (m[3] !== undefined) out.push(h("span", { class: "j-lit" }, m[3]));
    else if (m[4] !== undefined) out.push(h("span", { class: "j-num" }, m[4]));
    else out.push(h("span", { class: "j-pun" }, m[5]));
    last = m.index + m[0].length;
  }
  if (last < text.length) out.push(text.slice(last));
  return out;
}

function lineCut(text, maxLines, maxChars) {
  let cut = Math.min(text.length, maxChars);
  let lines = 0;
  for (let i = 0; i < cut; i++) {
    if (text.charCodeAt(i) === 10 && ++lines >= maxLines) { cut = i; break; }
  }
  return cut;
}

function foldable(text, make, { maxLines, maxChars, cls }) {
  const cut = lineCut(text, maxLines, maxChars);
  const box = h("div", { class: cls });
  if (cut >= text.length) return replace(box, make(text));
  const lines = text.split("\n").length;
  const body = h("div");
  let open = false;
  const btn = h("button", { class: "linkbtn fold", type: "button" });
  const set = () => {
    replace(body, make(open ? text : text.slice(0, cut) + " …"));
    btn.textContent = open ? "Show less" : `Show all (${lines > maxLines ? `${lines.toLocaleString("en-US")} lines, ` : ""}${text.length.toLocaleString("en-US")} chars)`;
  };
  btn.addEventListener("click", () => { open = !open; set(); });
  set();
  return replace(box, body, h("div", { class: "fold-note" }, btn));
}

/** Text, folded past `maxLines` lines or `maxChars` characters. */
export function textView(text, { maxLines = 24, maxChars = 2000 } = {}) {
  return foldable(String(text), (t) => h("div", { class: "text" }, t), { maxLines, maxChars, cls: "textwrap" });
}

/** A JSON value, pretty-printed and coloured, folded past `maxLines` lines. */
export function jsonView(value, { maxLines = 30, maxChars = 6000 } = {}) {
  let text;
  try {
    text = JSON.stringify(value, null, 2) ?? String(value);
    // Small objects read best on one line: { "path": "src/a.py" }.
    if (value && typeof value === "object" && text.length <= 200) {
      const one = JSON.stringify(value, null, 1).replace(/\n\s*/g, " ");
      if (one.length <= 90) text = one;
    }
  } catch { text = String(value); }
  return foldable(text, (t) => h("pre", { class: "json" }, coloured(t)), { maxLines, maxChars, cls: "jsonwrap" });
}

/** A string that may hold JSON (tool arguments often do): parsed and pretty when it does. */
export function parseMaybeJson(v) {
  if (typeof v !== "string") return v;
  const t = v.trim();
  if ((t.startsWith("{") && t.endsWith("}")) || (t.startsWith("[") && t.endsWith("]"))) {
    try { return JSON.parse(t); } catch { return v; }
  }
  return v;
}

/** Any value: strings as (folded) text, everything else as JSON. */
export function valueView(v, opts = {}) {
  const p = parseMaybeJson(v);
  if (typeof p === "string") return textView(p, opts);
  return jsonView(p, opts);
}
