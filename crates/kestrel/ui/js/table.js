// Tables: a generic sortable table, and the trace table shared by search, steps and projects
// (time, status, model, datapoint, grade, tokens, cost, duration, tags; each row opens its trace).

import { h, replace, enc } from "./dom.js";
import { api } from "./api.js";
import * as f from "./format.js";

/**
 * `columns`: [{label, cell(row), num, cls, sort(row) -> comparable}]; `rowHref(row)` makes rows
 * open a page (the first link in the row is what gets followed).
 */
export function table(columns, rows, { rowHref = null, id = null, empty = "Nothing here yet.", sorted = null } = {}) {
  const tbody = h("tbody");
  let order = sorted; // {index, dir}
  const fill = () => {
    let list = rows;
    if (order) {
      const col = columns[order.index];
      list = rows.slice().sort((a, b) => cmp(col.sort(a), col.sort(b)) * order.dir);
    }
    replace(tbody, list.map((r) => {
      const tr = h("tr", { class: rowHref ? "link" : null },
        columns.map((c) => h("td", { class: [c.num && "num", c.cls] }, c.cell(r))));
      if (rowHref) {
        tr.addEventListener("click", (e) => {
          if (e.target.closest("a, button, input")) return;
          tr.querySelector("a[href]")?.click();
        });
      }
      return tr;
    }));
  };
  const head = h("tr", null, columns.map((c, i) => {
    const th = h("th", { class: [c.num && "num", c.sort && "sortable"], title: c.sort ? "Sort" : null }, c.label);
    if (c.sort) {
      th.addEventListener("click", () => {
        order = { index: i, dir: order?.index === i ? -order.dir : (c.num ? -1 : 1) };
        for (const x of head.children) x.removeAttribute("aria-sort");
        th.setAttribute("aria-sort", order.dir > 0 ? "ascending" : "descending");
        fill();
      });
    }
    return th;
  }));
  fill();
  if (!rows.length) return h("div", { class: "empty", id }, empty);
  return h("table", { class: "data", id }, h("thead", null, head), tbody);
}

function cmp(a, b) {
  const na = a === null || a === undefined, nb = b === null || b === undefined;
  if (na || nb) return na === nb ? 0 : na ? 1 : -1;
  return a < b ? -1 : a > b ? 1 : 0;
}

export function traceHref(t) {
  return `/ui/traces/${enc(t.trace_id)}`;
}

function runCell(t) {
  if (!t.run_id) return "—";
  // prod traces are filed under the project: their "run" is the project name.
  if (t.run_id === t.project) return h("span", { class: "muted" }, t.phase || "prod");
  return h("a", { href: `/ui/runs/${enc(t.run_id)}`, title: t.run_id }, t.run_id.slice(0, 12) + "…");
}

/** The columns of a trace list. `grade`: show that grade only; `step`: add a step column. */
export function traceColumns({ grade = null, step = false, run = false } = {}) {
  const cols = [
    { label: "Time", cell: (t) => h("a", { href: traceHref(t), class: "trace-link", title: t.trace_id }, f.time(t.started_at)), cls: "mono" },
    { label: "Status", cell: (t) => f.statusBadge(t.status) },
    step && { label: "Step", num: true, cell: (t) => t.step ?? "—" },
    run && { label: "Run", cell: runCell, cls: "mono clip" },
    { label: "Model", cell: (t) => t.model_name || "—", cls: "clip" },
    { label: "Datapoint", cell: (t) => t.datapoint_id || "—", cls: "mono clip" },
    grade
      ? { label: grade, num: true, cell: (t) => { const g = t.grades.find((x) => x.name === grade); return g ? h("b", null, f.gradeValue(g.value)) : h("span", { class: "muted" }, "—"); } }
      : { label: "Grades", cell: (t) => f.gradeChips(t.grades) },
    { label: "Tokens", num: true, cell: (t) => f.count(t.input_tokens + t.output_tokens) },
    { label: "Cost", num: true, cell: (t) => f.cost(t.cost_usd) },
    { label: "Duration", num: true, cell: (t) => f.duration(t.duration_ms) },
    { label: "Tags", cell: (t) => t.tags.map((tag) => h("a", { class: "chip", href: `/ui/search?q=${enc(f.term("tag", tag))}` }, tag)) },
  ];
  return cols.filter(Boolean);
}

/**
 * A trace list fetched from `path` with `params`, 50 at a time with a "Load more" button.
 * Resolves once the first page is drawn; rejects with the API error of the first page.
 */
export async function pagedTraces(path, params, { signal, id = "traces", columns = traceColumns(), empty = "No traces.", pageSize = 50 } = {}) {
  const box = h("div", { class: "traces" });
  const rows = [];
  let cursor = null;
  const more = h("button", { class: "btn small", type: "button" }, "Load more");
  const draw = () => replace(box,
    table(columns, rows, { rowHref: traceHref, id, empty }),
    cursor ? h("div", { class: "more" }, more) : null);
  const load = async () => {
    const page = await api(path, { params: { ...params, limit: pageSize, cursor }, signal });
    rows.push(...page.data);
    cursor = page.next_cursor;
    draw();
  };
  more.addEventListener("click", async () => {
    more.disabled = true;
    try { await load(); } finally { more.disabled = false; }
  });
  await load();
  return box;
}
