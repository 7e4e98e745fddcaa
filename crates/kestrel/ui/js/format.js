// How numbers, times and values read on screen, and in the search language. Times from the API
// are microseconds since the Unix epoch; they are shown in the browser's time zone.

import { h } from "./dom.js";

export const STATUSES = ["COMPLETED", "TRUNCATED", "ERROR", "CANCELLED", "RUNNING"];
export const STATUS_COLORS = {
  COMPLETED: "#22a35a", TRUNCATED: "#e5a00d", ERROR: "#dc3b3b", CANCELLED: "#9aa3ae", RUNNING: "#3b82f6",
};
/** Colours of chart series (grade names, runs), in order. */
export const PALETTE = ["#2456d6", "#7c3aed", "#0d9488", "#db2777", "#ea580c", "#65a30d", "#0891b2", "#9333ea"];

const pad = (n) => String(n).padStart(2, "0");

export function time(us) {
  if (us === null || us === undefined) return "—";
  const d = new Date(us / 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

export function shortTime(us, spanUs = 0) {
  const d = new Date(us / 1000);
  const hm = `${pad(d.getHours())}:${pad(d.getMinutes())}`;
  if (spanUs > 2 * 86400e6) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${hm}`;
  if (spanUs && spanUs < 600e6) return `${hm}:${pad(d.getSeconds())}`;
  return hm;
}

export function ago(us) {
  if (!us) return "—";
  const s = (Date.now() - us / 1000) / 1000;
  if (s < 60) return "just now";
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  if (s < 30 * 86400) return `${Math.floor(s / 86400)} d ago`;
  return time(us).slice(0, 10);
}

export function duration(ms) {
  if (ms === null || ms === undefined || Number.isNaN(ms)) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60000) return `${(ms / 1000).toFixed(ms < 10000 ? 2 : 1)} s`;
  if (ms < 3600000) return `${Math.floor(ms / 60000)} m ${Math.round((ms % 60000) / 1000)} s`;
  return `${Math.floor(ms / 3600000)} h ${Math.round((ms % 3600000) / 60000)} m`;
}

export function cost(usd) {
  if (usd === null || usd === undefined) return "—";
  if (usd === 0) return "$0";
  if (Math.abs(usd) < 0.01) return `$${Number(usd.toPrecision(2))}`;
  if (Math.abs(usd) < 100) return `$${usd.toFixed(2)}`;
  return `$${Math.round(usd).toLocaleString("en-US")}`;
}

export function count(n) {
  if (n === null || n === undefined) return "—";
  if (Math.abs(n) < 10000) return Number(n).toLocaleString("en-US");
  if (Math.abs(n) < 1e6) return `${(n / 1e3).toFixed(n < 1e5 ? 1 : 0)}k`;
  if (Math.abs(n) < 1e9) return `${(n / 1e6).toFixed(n < 1e7 ? 2 : 1)}M`;
  return `${(n / 1e9).toFixed(2)}B`;
}

/** An exact whole number with thousands separators: 30000 -> "30,000". */
export function int(n) {
  return Number(n).toLocaleString("en-US");
}

/** A number of unknown scale, short: 0.8125 -> "0.813", 12345.6 -> "12,346". */
export function num(x) {
  if (x === null || x === undefined || Number.isNaN(x)) return "—";
  if (Number.isInteger(x)) return x.toLocaleString("en-US");
  const a = Math.abs(x);
  if (a >= 1000) return Math.round(x).toLocaleString("en-US");
  if (a >= 1) return String(+x.toFixed(2));
  if (a >= 0.001) return String(+x.toFixed(3));
  return x.toPrecision(2);
}

/** A grade value: number, bool or label. */
export function gradeValue(v) {
  if (typeof v === "boolean") return v ? "true" : "false";
  if (typeof v === "number") return num(v);
  return String(v);
}

/** A grade's value as a number (bools as 0/1), or null for labels. */
export function gradeNumber(v) {
  if (typeof v === "boolean") return v ? 1 : 0;
  if (typeof v === "number") return v;
  return null;
}

export function statusBadge(status) {
  const st = STATUSES.includes(status) ? status : "RUNNING";
  return h("span", { class: ["badge", `st-${st}`] }, status || "RUNNING");
}

export function phaseTag(phase) {
  return phase ? h("span", { class: "phase" }, phase) : null;
}

export function gradeChips(grades, only = null) {
  return (grades || [])
    .filter((g) => !only || g.name === only)
    .map((g) => h("span", { class: "grade", title: `${g.name} = ${gradeValue(g.value)}` }, h("b", null, g.name), gradeValue(g.value)));
}

/** A thin horizontal bar of the status mix ({COMPLETED: 3, ERROR: 1}). */
export function statusMix(mix) {
  const total = Object.values(mix || {}).reduce((a, b) => a + b, 0);
  const title = STATUSES.filter((s) => mix?.[s]).map((s) => `${s} ${mix[s]}`).join(", ");
  return h("span", { class: "mix", title },
    total ? STATUSES.filter((s) => mix[s]).map((s) => h("span", { class: `bg-${s}`, style: { width: `${(100 * mix[s]) / total}%` } })) : null);
}

export function plural(n, word, many = word + "s") {
  return `${count(n)} ${n === 1 ? word : many}`;
}

// ---------------------------------------------------------------- values in search queries
// Search links are built from values the UI shows (tags, ids, model names, metadata keys and
// values); each must read back as exactly that value. The language's rules (crates/kestrel-query):
// a bare value ends at white space, a quote or a parenthesis; a bare `meta.`/`grade.` key also
// ends at `:`, `<` or `>`. Anything else is written in double quotes, where `\"` stands for `"`
// and `\\` for `\`. "White space" is Unicode's White_Space, as the server reads it.

const VALUE_NEEDS_QUOTES = /[\p{White_Space}"()]/u;
const KEY_NEEDS_QUOTES = /[\p{White_Space}"():<>]/u;

/**
 * `text` as a search value (`key: true`: as a `meta.`/`grade.` key): bare when the language reads
 * it back unchanged, else in double quotes with `"` and `\` escaped.
 */
export function quote(text, { key = false } = {}) {
  const s = String(text);
  const needs = s === "" || (key ? KEY_NEEDS_QUOTES : VALUE_NEEDS_QUOTES).test(s);
  return needs ? `"${s.replace(/["\\]/g, "\\$&")}"` : s;
}

/** The term `field:value`, the value quoted when it must be (`tag:"a b"`). */
export function term(field, value) {
  return `${field}:${quote(value)}`;
}

/** The term `meta.key:value`, key and value quoted when they must be (`meta."customer id":x`). */
export function metaTerm(key, value) {
  return `meta.${quote(key, { key: true })}:${quote(value)}`;
}
