// The JSON API client of the UI. Every call goes to /api/v1 on the same origin.
//
// Auth: when the API answers 401, the UI asks for the key once (one dialog even when many calls
// fail together), keeps it in localStorage and retries with `Authorization: Bearer <key>`. A key
// the server refuses is forgotten and asked for again, with the server's message.

import { h } from "./dom.js";

const KEY = "kestrel.apiKey";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function storedKey() {
  try { return localStorage.getItem(KEY); } catch { return null; }
}

export function forgetKey() {
  try { localStorage.removeItem(KEY); } catch { /* storage disabled: nothing kept */ }
  document.dispatchEvent(new CustomEvent("kestrel:key"));
}

function saveKey(key) {
  try { localStorage.setItem(KEY, key); } catch { /* storage disabled: key lives in memory only */ }
  memoryKey = key;
  document.dispatchEvent(new CustomEvent("kestrel:key"));
}

let memoryKey = null;
let pendingPrompt = null;

/** Shows the key dialog; resolves with the key entered. One dialog at a time. */
function askKey(reason) {
  if (pendingPrompt) return pendingPrompt;
  pendingPrompt = new Promise((resolve) => {
    const input = h("input", { class: "input", type: "password", id: "apikey", placeholder: "API key", autocomplete: "current-password" });
    const form = h("form", { class: "modal", id: "keyform" },
      h("h2", null, "API key needed"),
      h("p", null, "This Kestrel asks for an API key. It is kept in this browser (localStorage) and sent with each request."),
      reason ? h("div", { class: "bad" }, reason) : null,
      input,
      h("div", { class: "row" }, h("button", { class: "btn primary", type: "submit" }, "Save key")));
    const back = h("div", { class: "modal-back" }, form);
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const key = input.value.trim();
      if (!key) return;
      back.remove();
      pendingPrompt = null;
      saveKey(key);
      resolve(key);
    });
    document.body.appendChild(back);
    input.focus();
  });
  return pendingPrompt;
}

/**
 * Calls the API: `api("/traces", {params: {q}})`, `api(path, {method: "POST", body})`.
 * Resolves with the parsed JSON; rejects with ApiError (status, code, message).
 */
export async function api(path, { method = "GET", params = null, body = undefined, signal = undefined } = {}) {
  let target = "/api/v1" + path;
  if (params) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
    if ([...q].length) target += "?" + q.toString();
  }
  for (let attempt = 0; attempt < 4; attempt++) {
    const key = storedKey() || memoryKey;
    const headers = { Accept: "application/json" };
    if (key) headers.Authorization = `Bearer ${key}`;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    let res;
    try {
      res = await fetch(target, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), signal });
    } catch (e) {
      if (e.name === "AbortError") throw e;
      throw new ApiError(0, "network", `Kestrel did not answer (${e.message}). Is the server running?`);
    }
    if (res.status === 401) {
      const err = await readError(res);
      if (key) { try { localStorage.removeItem(KEY); } catch { /* ignore */ } memoryKey = null; }
      await askKey(key ? `The key was refused: ${err.message}` : null);
      continue;
    }
    if (!res.ok) throw await readError(res);
    const text = await res.text();
    return text ? JSON.parse(text) : null;
  }
  throw new ApiError(401, "unauthorized", "the API key was refused");
}

async function readError(res) {
  let code = "http_" + res.status;
  let message = `${res.status} ${res.statusText}`;
  try {
    const body = await res.json();
    if (body?.error) { code = body.error.code || code; message = body.error.message || message; }
  } catch { /* not JSON: keep the status line */ }
  return new ApiError(res.status, code, message);
}

/** Every page of a list, up to `max` rows. Returns {data, truncated}. */
export async function apiAll(path, params = {}, { max = 5000, signal } = {}) {
  const data = [];
  let cursor = null;
  do {
    const page = await api(path, { params: { ...params, limit: 1000, cursor }, signal });
    data.push(...page.data);
    cursor = page.next_cursor;
  } while (cursor && data.length < max);
  return { data, truncated: Boolean(cursor) };
}
