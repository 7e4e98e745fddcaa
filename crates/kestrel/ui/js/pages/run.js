// A run. Training runs: a reward curve per grade name (mean line, min/max band, median dashed),
// the status mix, tokens and cost per step, and the steps table; a click on a step opens its
// rollouts. Eval runs: grades by datapoint, and a picker to compare with another run.

import { h, replace, enc, url, panel, figures } from "../dom.js";
import { api, apiAll } from "../api.js";
import * as f from "../format.js";
import { table, pagedTraces, traceColumns } from "../table.js";
import { xyChart } from "../chart.js";
import { jsonView } from "../json.js";

/** Eval runs: traces read to build the datapoint table. */
export const MAX_EVAL_TRACES = 5000;

export async function render(ctx) {
  const id = ctx.params.id;
  const run = await api(`/runs/${enc(id)}`, { signal: ctx.signal });
  const label = run.name || run.id;
  ctx.crumbs([["Projects", "/ui/"], [run.project, `/ui/projects/${enc(run.project)}`], [label]]);
  ctx.title(label);
  const [steps, stats] = await Promise.all([
    api(`/runs/${enc(id)}/steps`, { signal: ctx.signal }).then((p) => p.data),
    api("/stats", { params: { run_id: id }, signal: ctx.signal }),
  ]);
  const head = h("div", { class: "page-head" },
    h("div", null,
      h("div", { class: "kicker" }, run.phase === "train" ? "Training run" : run.phase === "eval" ? "Eval run" : "Run"),
      h("h1", null, label),
      h("div", { class: "sub" }, h("span", { class: "mono" }, run.id), " · ", f.phaseTag(run.phase), " · created ", f.time(run.created_at))),
    h("div", { class: "actions" },
      h("a", { class: "btn", href: url("/ui/search", { q: f.term("run", run.id) }) }, "Search rollouts")));
  const grades = Object.entries(stats.grades).map(([n, g]) => [`${n} mean`, f.num(g.mean)]);
  const figs = figures([
    steps.length ? ["Steps", f.count(steps.length)] : null,
    ["Rollouts", f.count(stats.traces)],
    ["Errors", f.count(stats.errors)],
    ...grades.slice(0, 3),
    ["Tokens", f.count(stats.input_tokens + stats.output_tokens)],
    ["Cost", f.cost(stats.cost_usd)],
    ["p50", f.duration(stats.duration_ms_p50)],
  ]);
  const config = Object.keys(run.config || {}).length ? panel("Config", jsonView(run.config, { maxLines: 12 })) : null;
  const content = h("div", null, h("p", { class: "loading" }, "Loading…"));
  replace(ctx.root, head, figs, content, config);
  if (steps.length || run.phase === "train") {
    replace(content, stepsView(ctx, run, steps));
  } else {
    replace(content, await evalView(ctx, run));
  }
}

function stepsView(ctx, run, steps) {
  if (!steps.length) return panel("Steps", h("div", { class: "empty" }, "No steps yet. Steps appear as rollouts arrive (or with kestrel.create_run_step)."));
  steps.sort((a, b) => a.step - b.step);
  const xs = steps.map((s) => s.step);
  const stepHref = (i, grade) => url(`/ui/runs/${enc(run.id)}/steps/${xs[i]}`, { grade });
  const title = (i) => `Step ${xs[i]} · ${f.plural(steps[i].rollouts, "rollout")}`;
  const common = { x: xs, xInteger: true, xFormat: (v) => f.num(v), title, height: 230 };
  const gradeNames = [...new Set(steps.flatMap((s) => Object.keys(s.grades)))].sort((a, b) => (a === "reward" ? -1 : b === "reward" ? 1 : a.localeCompare(b)));

  const curves = gradeNames.map((g, k) => {
    const color = f.PALETTE[k % f.PALETTE.length];
    const val = (key) => steps.map((s) => s.grades[g]?.[key] ?? null);
    const chart = xyChart({
      ...common,
      id: `curve-${g}`,
      label: `${g} per step`,
      yFormat: (v) => f.num(v),
      onPick: (i) => ctx.navigate(stepHref(i, g)),
      pickHint: "click: this step's rollouts",
      pointAttrs: (i) => ({ "data-step": xs[i], "aria-label": `step ${xs[i]}: ${g} mean ${f.num(steps[i].grades[g]?.mean)}` }),
      layers: [
        { type: "band", name: "min – max", color, lo: val("min"), hi: val("max") },
        { type: "line", name: "median", color, values: val("p50"), dash: "4 4", width: 1.25 },
        { type: "line", name: "mean", color, values: val("mean"), points: true, width: 2.25 },
      ],
    });
    return panel(`${g} per step`, [chart, h("div", { class: "chart-note" }, "Mean with min–max band and median (dashed). Click a step to see its rollouts sorted by ", g, ".")], { cls: "curve" });
  });

  const statusChart = xyChart({
    ...common, id: "chart-status", label: "status mix per step", yMin: 0, height: 200,
    yFormat: (v) => f.count(v),
    onPick: (i) => ctx.navigate(stepHref(i, gradeNames[0])),
    layers: [{ type: "bars", series: f.STATUSES.map((st) => ({ name: st, color: f.STATUS_COLORS[st], values: steps.map((s) => s.status[st] || 0) })).filter((sr) => sr.values.some(Boolean)) }],
  });
  const tokensChart = xyChart({
    ...common, id: "chart-tokens", label: "tokens per step", yMin: 0, height: 200,
    yFormat: (v) => f.count(v),
    onPick: (i) => ctx.navigate(stepHref(i, gradeNames[0])),
    layers: [{ type: "bars", series: [
      { name: "input tokens", color: "#93b4f5", values: steps.map((s) => s.input_tokens) },
      { name: "output tokens", color: "#2456d6", values: steps.map((s) => s.output_tokens) },
    ] }],
  });
  const costChart = xyChart({
    ...common, id: "chart-cost", label: "cost per step", yMin: 0, height: 200,
    yFormat: (v, exact) => exact ? f.cost(v) : `$${f.num(v)}`,
    onPick: (i) => ctx.navigate(stepHref(i, gradeNames[0])),
    layers: [{ type: "line", name: "cost", color: "#0d9488", values: steps.map((s) => s.cost_usd), points: steps.length <= 200 }],
  });
  const durChart = xyChart({
    ...common, id: "chart-duration", label: "duration per step", yMin: 0, height: 200,
    yFormat: (v) => f.duration(v),
    onPick: (i) => ctx.navigate(stepHref(i, gradeNames[0])),
    layers: [
      { type: "line", name: "p50", color: "#7c3aed", values: steps.map((s) => s.duration_ms_p50 ?? null) },
      { type: "line", name: "p90", color: "#db2777", values: steps.map((s) => s.duration_ms_p90 ?? null), dash: "5 3" },
    ],
  });

  const cols = [
    { label: "Step", num: true, cell: (s) => h("a", { href: url(`/ui/runs/${enc(run.id)}/steps/${s.step}`, { grade: gradeNames[0] }), class: "step-link" }, String(s.step)), sort: (s) => s.step },
    { label: "Rollouts", num: true, cell: (s) => f.count(s.rollouts), sort: (s) => s.rollouts },
    { label: "Status", cell: (s) => f.statusMix(s.status) },
    ...gradeNames.map((g) => ({ label: `${g} mean`, num: true, cell: (s) => f.num(s.grades[g]?.mean), sort: (s) => s.grades[g]?.mean })),
    { label: "Tokens", num: true, cell: (s) => f.count(s.input_tokens + s.output_tokens), sort: (s) => s.input_tokens + s.output_tokens },
    { label: "Cost", num: true, cell: (s) => f.cost(s.cost_usd), sort: (s) => s.cost_usd },
    { label: "p50 duration", num: true, cell: (s) => f.duration(s.duration_ms_p50), sort: (s) => s.duration_ms_p50 },
  ];
  return h("div", null,
    curves.length ? curves : panel("Grades", h("div", { class: "empty" }, "No numeric grade logged yet: log Grade(name=\"reward\", value=...) in each rollout to see a reward curve.")),
    h("div", { class: "grid2" },
      panel("Status mix per step", statusChart),
      panel("Tokens per step", tokensChart),
      panel("Cost per step", costChart),
      panel("Duration per step", durChart)),
    panel(`Steps (${steps.length})`, table(cols, steps.slice().reverse(), { rowHref: true, id: "steps" }), { cls: "flush-table" }));
}

/** Rows of an eval run: one per datapoint, with the mean of each grade over its rollouts. */
export function byDatapoint(traces) {
  const rows = new Map();
  for (const t of traces) {
    const key = t.datapoint_id ?? "";
    let r = rows.get(key);
    if (!r) { r = { id: key, traces: [], status: {}, grades: {}, tokens: 0, cost: 0 }; rows.set(key, r); }
    r.traces.push(t);
    r.status[t.status] = (r.status[t.status] || 0) + 1;
    r.tokens += t.input_tokens + t.output_tokens;
    r.cost += t.cost_usd;
    for (const g of t.grades) {
      const v = f.gradeNumber(g.value);
      const acc = r.grades[g.name] || (r.grades[g.name] = { sum: 0, n: 0, labels: [] });
      if (v === null) acc.labels.push(g.value); else { acc.sum += v; acc.n += 1; }
    }
  }
  for (const r of rows.values()) {
    for (const acc of Object.values(r.grades)) acc.mean = acc.n ? acc.sum / acc.n : null;
  }
  return [...rows.values()];
}

export function gradeCell(acc) {
  if (!acc) return h("span", { class: "muted" }, "—");
  if (acc.mean !== null) return f.num(acc.mean);
  return [...new Set(acc.labels)].map((l) => h("span", { class: "grade" }, l));
}

async function evalView(ctx, run) {
  const { data: traces, truncated } = await apiAll(`/runs/${enc(run.id)}/traces`, {}, { max: MAX_EVAL_TRACES, signal: ctx.signal });
  const rows = byDatapoint(traces);
  const gradeNames = [...new Set(rows.flatMap((r) => Object.keys(r.grades)))].sort();
  const cols = [
    { label: "Datapoint", cell: (r) => r.traces.length === 1
      ? h("a", { href: `/ui/traces/${enc(r.traces[0].trace_id)}`, class: "dp-link" }, r.id || "(none)")
      : h("a", { href: url("/ui/search", { q: f.term("run", run.id) + (r.id ? " " + f.term("datapoint", r.id) : "") }), class: "dp-link" }, r.id || "(none)"),
    cls: "mono", sort: (r) => r.id },
    { label: "Rollouts", num: true, cell: (r) => r.traces.length, sort: (r) => r.traces.length },
    { label: "Status", cell: (r) => f.statusMix(r.status) },
    ...gradeNames.map((g) => ({ label: g, num: true, cell: (r) => gradeCell(r.grades[g]), sort: (r) => r.grades[g]?.mean })),
    { label: "Tokens", num: true, cell: (r) => f.count(r.tokens), sort: (r) => r.tokens },
    { label: "Cost", num: true, cell: (r) => f.cost(r.cost), sort: (r) => r.cost },
  ];

  // Compare with another run of the project.
  const others = (await api("/runs", { params: { project: run.project, limit: 200 }, signal: ctx.signal })).data
    .filter((r) => r.id !== run.id)
    .sort((a, b) => (a.phase === run.phase ? 0 : 1) - (b.phase === run.phase ? 0 : 1) || b.created_at - a.created_at);
  const select = h("select", { class: "input", id: "compare-with" },
    others.map((r) => h("option", { value: r.id }, `${r.name || r.id} (${r.phase}, ${f.time(r.created_at).slice(0, 16)})`)));
  const compare = others.length
    ? h("form", { class: "actions", id: "compare-form" }, select, h("button", { class: "btn", type: "submit" }, "Compare"))
    : h("span", { class: "muted" }, "No other run in this project to compare with.");
  if (others.length) {
    compare.addEventListener("submit", (e) => { e.preventDefault(); ctx.navigate(url("/ui/compare", { a: run.id, b: select.value })); });
  }
  return h("div", null,
    h("section", { class: "panel flush" },
      h("div", { class: "panel-head", style: { padding: "14px 16px 0" } },
        h("h2", null, `Grades by datapoint (${rows.length}${truncated ? `, from the first ${MAX_EVAL_TRACES} rollouts` : ""})`), compare),
      table(cols, rows, { rowHref: true, id: "datapoints", empty: "No rollouts in this run yet." })),
    panel("Rollouts", await pagedTraces(`/runs/${enc(run.id)}/traces`, {}, { signal: ctx.signal, id: "run-traces" })));
}
