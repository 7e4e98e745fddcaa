// Search: the query language in a box, the error pointed at when the query is wrong, figures of
// the matches, and the matching traces as a table. The URL holds the query (`/ui/search?q=...`).

import { h, replace, url } from "../dom.js";
import { api, ApiError } from "../api.js";
import * as f from "../format.js";
import { pagedTraces, traceColumns } from "../table.js";

const EXAMPLES = ["status:error", "since:24h cost>0.01", "grade.reward>=0.5", "tool:search_web", "-tag:internal \"timed out\"", "duration>2s"];

/** A search form; `onSubmit(q)` runs on Enter or the button. */
export function queryForm(q, onSubmit, { id = "q", placeholder = "status:error tag:premium model:gpt-4o grade.reward>=0.5 \"timed out\"", examples = true } = {}) {
  const input = h("input", { name: "q", id, value: q || "", placeholder, autocomplete: "off", spellcheck: "false", "aria-label": "Search query" });
  const form = h("form", { class: "qbox", role: "search" }, input, h("button", { class: "btn primary", type: "submit", id: `${id}-go` }, "Search"));
  form.addEventListener("submit", (e) => { e.preventDefault(); onSubmit(input.value.trim()); });
  const help = examples ? h("div", { class: "qhelp" }, "Try ",
    EXAMPLES.map((ex, i) => [i ? " " : "", h("code", { title: "Use this query", onclick: () => { input.value = ex; onSubmit(ex); } }, ex)])) : null;
  return h("div", null, form, help);
}

/** The error of a bad query, with the bad span of the query marked. */
export function queryError(err, q) {
  const box = h("div", { class: "qerror", id: "query-error", role: "alert" }, h("div", null, err.message));
  const m = /\bat (\d+)\.\.(\d+)(?=;|$)/.exec(err.message);
  if (m && q) {
    const chars = Array.from(q);
    const a = Math.max(0, +m[1] - 1), b = Math.min(chars.length, Math.max(a + 1, +m[2] - 1));
    box.appendChild(h("div", { class: "where" },
      chars.slice(0, a).join(""), h("mark", null, chars.slice(a, b).join("") || " "), chars.slice(b).join("")));
  }
  return box;
}

/** Figures of a set of traces (from /stats). */
export function statsFigures(st) {
  const grades = Object.entries(st.grades || {}).slice(0, 3)
    .map(([name, g]) => [`${name} mean`, f.num(g.mean)]);
  return [
    ["Traces", f.count(st.traces)],
    ["Errors", st.traces ? `${f.count(st.errors)} (${((100 * st.errors) / st.traces).toFixed(st.errors && st.errors < st.traces / 100 ? 1 : 0)}%)` : "0"],
    ["Tokens", f.count(st.input_tokens + st.output_tokens)],
    ["Cost", f.cost(st.cost_usd)],
    ["p50", f.duration(st.duration_ms_p50)],
    ["p95", f.duration(st.duration_ms_p95)],
    ...grades,
  ];
}

export async function render(ctx) {
  const q = ctx.query.get("q") || "";
  const project = ctx.query.get("project") || "";
  ctx.crumbs(project ? [["Projects", "/ui/"], [project, `/ui/projects/${encodeURIComponent(project)}`], ["Search"]] : [["Search"]]);
  ctx.title(q ? `Search: ${q}` : "Search");
  const top = document.querySelector("#topsearch input");
  if (top) top.value = q;

  const results = h("div", { id: "results" });
  const form = queryForm(q, (nq) => ctx.navigate(url("/ui/search", { q: nq, project })));
  replace(ctx.root,
    h("div", { class: "page-head" }, h("div", null, h("h1", null, "Search traces"),
      h("div", { class: "sub" }, project ? `in project ${project}` : "across all projects"))),
    h("section", { class: "panel" }, form),
    results);
  form.querySelector("input").focus();

  const params = { q: q || undefined, project: project || undefined };
  try {
    const [stats, list] = await Promise.all([
      api("/stats", { params, signal: ctx.signal }),
      pagedTraces("/traces", params, { signal: ctx.signal, id: "search-results", columns: traceColumns({ run: true }), empty: "No trace matches this query." }),
    ]);
    replace(results, h("div", { class: "figures", id: "search-stats" },
      statsFigures(stats).map(([l, v]) => h("div", { class: "figure" }, h("div", { class: "label" }, l), h("div", { class: "value" }, v)))),
    h("section", { class: "panel flush" }, list));
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) {
      form.appendChild(queryError(e, q));
      replace(results);
      return;
    }
    throw e;
  }
}
