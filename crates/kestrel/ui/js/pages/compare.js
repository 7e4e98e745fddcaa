// Two runs on the same datapoints: `/ui/compare?a=RUN&b=RUN&grade=NAME`. Computed in the browser
// from both runs' traces (each run's grade per datapoint is the mean over its rollouts), up to
// MAX_EVAL_TRACES traces per run.

import { h, replace, enc, url, panel, figures, seg } from "../dom.js";
import { api, apiAll } from "../api.js";
import * as f from "../format.js";
import { table } from "../table.js";
import { byDatapoint, gradeCell, MAX_EVAL_TRACES } from "./run.js";

function runLink(r) {
  return h("a", { href: `/ui/runs/${enc(r.id)}` }, r.name || r.id);
}

function traceLinks(row) {
  if (!row) return h("span", { class: "muted" }, "—");
  return row.traces.slice(0, 3).map((t, i) => [i ? " " : "", h("a", { href: `/ui/traces/${enc(t.trace_id)}`, class: "mono", title: t.trace_id }, f.statusBadge(t.status))]);
}

export async function render(ctx) {
  const a = ctx.query.get("a"), b = ctx.query.get("b");
  ctx.crumbs([["Projects", "/ui/"], ["Compare runs"]]);
  ctx.title("Compare runs");
  if (!a || !b) {
    replace(ctx.root, h("div", { class: "notice" }, "Pick two runs: open an eval run and use its Compare button."));
    return;
  }
  const [ra, rb, ta, tb] = await Promise.all([
    api(`/runs/${enc(a)}`, { signal: ctx.signal }),
    api(`/runs/${enc(b)}`, { signal: ctx.signal }),
    apiAll(`/runs/${enc(a)}/traces`, {}, { max: MAX_EVAL_TRACES, signal: ctx.signal }),
    apiAll(`/runs/${enc(b)}/traces`, {}, { max: MAX_EVAL_TRACES, signal: ctx.signal }),
  ]);
  ctx.crumbs([["Projects", "/ui/"], [ra.project, `/ui/projects/${enc(ra.project)}`], [ra.name || ra.id, `/ui/runs/${enc(a)}`], ["Compare"]]);
  const da = new Map(byDatapoint(ta.data).map((r) => [r.id, r]));
  const db = new Map(byDatapoint(tb.data).map((r) => [r.id, r]));
  const names = [...new Set([...da.values(), ...db.values()].flatMap((r) => Object.keys(r.grades)))]
    .sort((x, y) => (x === "reward" ? -1 : y === "reward" ? 1 : x.localeCompare(y)));
  const grade = ctx.query.get("grade") || names[0] || null;
  const only = ctx.query.get("only") || "all";
  const here = (over) => url("/ui/compare", { a, b, grade, only, ...over });

  const ids = [...new Set([...da.keys(), ...db.keys()])];
  const rows = ids.map((id) => {
    const x = da.get(id), y = db.get(id);
    const va = x?.grades[grade]?.mean ?? null, vb = y?.grades[grade]?.mean ?? null;
    return { id, x, y, va, vb, delta: va !== null && vb !== null ? vb - va : null };
  });
  const both = rows.filter((r) => r.x && r.y);
  const scored = both.filter((r) => r.delta !== null);
  const mean = (vals) => vals.length ? vals.reduce((s, v) => s + v, 0) / vals.length : null;
  const better = scored.filter((r) => r.delta > 1e-12).length;
  const worse = scored.filter((r) => r.delta < -1e-12).length;
  const shown = only === "changed" ? rows.filter((r) => r.delta !== null && Math.abs(r.delta) > 1e-12)
    : only === "both" ? both : rows;

  const deltaCell = (r) => r.delta === null ? h("span", { class: "muted" }, "—")
    : h("span", { class: r.delta > 1e-12 ? "delta-up" : r.delta < -1e-12 ? "delta-down" : "muted" }, `${r.delta > 0 ? "+" : ""}${f.num(r.delta)}`);
  const cols = [
    { label: "Datapoint", cell: (r) => r.id || "(none)", cls: "mono", sort: (r) => r.id },
    { label: `A: ${grade ?? "grade"}`, num: true, cell: (r) => gradeCell(r.x?.grades[grade]), sort: (r) => r.va },
    { label: `B: ${grade ?? "grade"}`, num: true, cell: (r) => gradeCell(r.y?.grades[grade]), sort: (r) => r.vb },
    { label: "B − A", num: true, cell: deltaCell, sort: (r) => r.delta },
    { label: "A rollouts", cell: (r) => traceLinks(r.x) },
    { label: "B rollouts", cell: (r) => traceLinks(r.y) },
  ];
  const ma = mean(scored.map((r) => r.va)), mb = mean(scored.map((r) => r.vb));
  replace(ctx.root,
    h("div", { class: "page-head" },
      h("div", null, h("div", { class: "kicker" }, "Compare runs"),
        h("h1", null, "A: ", runLink(ra), "  vs  B: ", runLink(rb)),
        h("div", { class: "sub" }, `${f.plural(both.length, "datapoint")} in both · ${da.size - both.length} only in A · ${db.size - both.length} only in B`
          + (ta.truncated || tb.truncated ? ` · first ${MAX_EVAL_TRACES} rollouts per run` : ""))),
      h("div", { class: "actions" }, h("a", { class: "btn", href: url("/ui/compare", { a: b, b: a, grade, only }) }, "Swap A and B"))),
    figures([
      [`A mean ${grade ?? ""}`, f.num(ma)],
      [`B mean ${grade ?? ""}`, f.num(mb)],
      ["B − A", ma === null || mb === null ? "—" : `${mb - ma > 0 ? "+" : ""}${f.num(mb - ma)}`],
      ["B better", f.count(better)],
      ["B worse", f.count(worse)],
      ["Same", f.count(scored.length - better - worse)],
    ]),
    h("section", { class: "panel flush", id: "compare" },
      h("div", { class: "panel-head", style: { padding: "14px 16px 4px" } },
        h("h2", null, "By datapoint"),
        h("div", { class: "actions" },
          names.length > 1 ? seg(names.map((n) => [n, n, here({ grade: n })]), grade) : null,
          seg([["all", "All", here({ only: "all" })], ["both", "In both", here({ only: "both" })], ["changed", "Changed", here({ only: "changed" })]], only))),
      table(cols, shown, { id: "compare-table", sorted: { index: 3, dir: 1 }, empty: "No datapoint to show." })));
  if (!names.length) ctx.root.appendChild(panel(null, h("div", { class: "muted" }, "Neither run has grades yet.")));
}
