// A project: its runs (eval and train), its production traffic over time, all its traces and its
// datapoints, one tab each (`/ui/projects/NAME?tab=runs|prod|traces|datapoints`).

import { h, replace, enc, url, tabs, seg, panel, figures } from "../dom.js";
import { api, ApiError } from "../api.js";
import * as f from "../format.js";
import { table, pagedTraces, traceColumns } from "../table.js";
import { xyChart, timeTicks } from "../chart.js";
import { jsonView } from "../json.js";
import { queryForm, queryError, statsFigures } from "./search.js";

const RANGES = [["1h", "1 h"], ["6h", "6 h"], ["24h", "24 h"], ["7d", "7 d"], ["30d", "30 d"]];
/** Runs whose totals are fetched on the runs tab. */
const RUN_STATS_FOR = 40;

export async function render(ctx) {
  const name = ctx.params.name;
  const tab = ctx.query.get("tab") || "runs";
  const base = `/ui/projects/${enc(name)}`;
  ctx.crumbs([["Projects", "/ui/"], [name]]);
  ctx.title(name);
  const project = await api(`/projects/${enc(name)}`, { signal: ctx.signal });
  const body = h("div", { id: `tab-${tab}` }, h("p", { class: "loading" }, "Loading…"));
  replace(ctx.root,
    h("div", { class: "page-head" },
      h("div", null, h("div", { class: "kicker" }, "Project"), h("h1", null, project.name),
        h("div", { class: "sub" }, `created ${f.time(project.created_at)}`)),
      h("div", { class: "actions" }, h("a", { class: "btn", href: url("/ui/search", { project: name }) }, "Search in project"))),
    tabs([
      ["runs", "Runs", base],
      ["prod", "Production", `${base}?tab=prod`],
      ["traces", "Traces", `${base}?tab=traces`],
      ["datapoints", "Datapoints", `${base}?tab=datapoints`],
    ], tab),
    body);
  if (tab === "prod") return prodTab(ctx, name, body);
  if (tab === "traces") return tracesTab(ctx, name, body);
  if (tab === "datapoints") return datapointsTab(ctx, name, body);
  return runsTab(ctx, name, body);
}

async function runsTab(ctx, name, body) {
  const page = await api("/runs", { params: { project: name, limit: 200 }, signal: ctx.signal });
  const runs = page.data.sort((a, b) => b.created_at - a.created_at);
  const statCells = new Map();
  const cell = (run, key) => {
    const el = h("span", { class: "muted" }, "");
    if (!statCells.has(run.id)) statCells.set(run.id, {});
    statCells.get(run.id)[key] = el;
    return el;
  };
  const cols = [
    { label: "Run", cell: (r) => h("a", { href: `/ui/runs/${enc(r.id)}`, class: "run-link" }, r.name || r.id), sort: (r) => r.name || r.id },
    { label: "Phase", cell: (r) => f.phaseTag(r.phase), sort: (r) => r.phase },
    { label: "Id", cell: (r) => r.id, cls: "mono muted" },
    { label: "Created", cell: (r) => f.time(r.created_at), cls: "mono", sort: (r) => r.created_at },
    { label: "Rollouts", num: true, cell: (r) => cell(r, "traces") },
    { label: "Status", cell: (r) => cell(r, "mix") },
    { label: "Grades (mean)", cell: (r) => cell(r, "grades") },
    { label: "Cost", num: true, cell: (r) => cell(r, "cost") },
  ];
  const prodLink = h("p", { class: "muted" }, "Production traffic (traces whose run is the project name) is on the ",
    h("a", { href: `/ui/projects/${enc(name)}?tab=prod` }, "Production"), " tab.");
  replace(body, panel(`Runs (${runs.length}${page.next_cursor ? "+" : ""})`,
    table(cols, runs, { rowHref: true, id: "runs", empty: "No eval or train runs in this project yet (create one with kestrel.create_run)." }),
    { cls: "flush-table" }), prodLink);
  runs.slice(0, RUN_STATS_FOR).forEach((r) => {
    api("/stats", { params: { run_id: r.id }, signal: ctx.signal }).then((st) => {
      const c = statCells.get(r.id);
      if (!c) return;
      replace(c.traces, f.count(st.traces));
      replace(c.mix, f.statusMix(st.status));
      replace(c.grades, f.gradeChips(Object.entries(st.grades).map(([n, g]) => ({ name: n, value: g.mean }))));
      replace(c.cost, f.cost(st.cost_usd));
    }).catch(() => {});
  });
}

async function prodTab(ctx, name, body) {
  const range = ctx.query.get("range") || "24h";
  const q = ctx.query.has("q") ? ctx.query.get("q") : "phase:prod";
  const here = (over) => url(`/ui/projects/${enc(name)}`, { tab: "prod", range, q, ...over });
  const form = queryForm(q, (nq) => ctx.navigate(here({ q: nq })), { id: "prod-q", examples: false });
  const charts = h("div", { id: "prod-charts" }, h("p", { class: "loading" }, "Loading…"));
  replace(body,
    h("section", { class: "panel" },
      h("div", { class: "panel-head" }, h("h2", null, "Production traffic"),
        seg(RANGES.map(([k, l]) => [k, l, here({ range: k })]), range)),
      form),
    charts);
  let ts, stats;
  try {
    [ts, stats] = await Promise.all([
      api(`/projects/${enc(name)}/timeseries`, { params: { since: range, q: q || undefined }, signal: ctx.signal }),
      api("/stats", { params: { project: name, q: [q, `since:${range}`].filter(Boolean).join(" ") }, signal: ctx.signal }),
    ]);
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) { form.appendChild(queryError(e, q)); replace(charts); return; }
    throw e;
  }
  const xs = ts.buckets.map((b) => b.start);
  const span = ts.until - ts.since;
  const bucketUs = ts.bucket_seconds * 1e6;
  const xFormat = (v) => f.shortTime(v, span);
  const title = (i) => `${f.time(xs[i])} + ${f.duration(ts.bucket_seconds * 1000)}`;
  const common = { x: xs, xGap: bucketUs, xFormat, xTicks: timeTicks, title, height: 200 };
  const statusSeries = f.STATUSES.map((st) => ({ name: st, color: f.STATUS_COLORS[st], values: ts.buckets.map((b) => b.status?.[st] || 0) }))
    .filter((sr) => sr.values.some((v) => v));
  const tracesChart = xyChart({ ...common, id: "chart-traffic", label: "traces over time", yMin: 0, yFormat: (v) => f.count(v),
    layers: [{ type: "bars", series: statusSeries.length ? statusSeries : [{ name: "traces", color: f.STATUS_COLORS.COMPLETED, values: xs.map(() => 0) }] }] });
  const errorsChart = xyChart({ ...common, id: "chart-errors", label: "errors over time", yMin: 0, yFormat: (v) => f.count(v),
    layers: [{ type: "bars", series: [{ name: "errors", color: f.STATUS_COLORS.ERROR, values: ts.buckets.map((b) => b.errors) }] }] });
  const latencyChart = xyChart({ ...common, id: "chart-latency", label: "latency", yMin: 0, yFormat: (v) => f.duration(v),
    layers: [
      { type: "line", name: "p50", color: "#2456d6", values: ts.buckets.map((b) => b.duration_ms_p50), points: xs.length < 80 },
      { type: "line", name: "p95", color: "#db2777", values: ts.buckets.map((b) => b.duration_ms_p95), dash: "5 3", points: xs.length < 80 },
    ] });
  const costChart = xyChart({ ...common, id: "chart-cost", label: "cost", yMin: 0, yFormat: (v, exact) => exact ? f.cost(v) : `$${f.num(v)}`,
    layers: [{ type: "bars", series: [{ name: "cost", color: "#0d9488", values: ts.buckets.map((b) => b.cost_usd) }] }] });
  replace(charts,
    figures(statsFigures(stats)),
    h("div", { class: "grid2" },
      panel("Traces by status", tracesChart),
      panel("Errors", errorsChart),
      panel("Latency p50 / p95", latencyChart),
      panel("Cost", costChart)),
    panel("Latest traces", await pagedTraces(`/projects/${enc(name)}/traces`, { q: [q, `since:${range}`].filter(Boolean).join(" ") },
      { signal: ctx.signal, id: "prod-traces", empty: "No trace in this range." }), { cls: "flush-panel" }));
}

async function tracesTab(ctx, name, body) {
  const q = ctx.query.get("q") || "";
  const sort = ctx.query.get("sort") || "newest";
  const here = (over) => url(`/ui/projects/${enc(name)}`, { tab: "traces", q, sort, ...over });
  const form = queryForm(q, (nq) => ctx.navigate(here({ q: nq })), { id: "traces-q", examples: false });
  const list = h("div", null, h("p", { class: "loading" }, "Loading…"));
  replace(body, h("section", { class: "panel" },
    h("div", { class: "panel-head" }, h("h2", null, "Traces"),
      seg([["newest", "Newest", here({ sort: "newest" })], ["cost_desc", "Cost", here({ sort: "cost_desc" })],
        ["duration_desc", "Slowest", here({ sort: "duration_desc" })], ["tokens_desc", "Tokens", here({ sort: "tokens_desc" })]], sort)),
    form), list);
  try {
    replace(list, h("section", { class: "panel flush" }, await pagedTraces(`/projects/${enc(name)}/traces`, { q: q || undefined, sort },
      { signal: ctx.signal, id: "project-traces", columns: traceColumns({ run: true, step: true }) })));
  } catch (e) {
    if (e instanceof ApiError && e.status === 400) { form.appendChild(queryError(e, q)); replace(list); return; }
    throw e;
  }
}

async function datapointsTab(ctx, name, body) {
  const page = await api(`/projects/${enc(name)}/datapoints`, { params: { limit: 200 }, signal: ctx.signal });
  const cols = [
    { label: "Id", cell: (d) => h("a", { href: url("/ui/search", { q: f.term("datapoint", d.id), project: name }) }, d.id), cls: "mono", sort: (d) => d.id },
    { label: "Input", cell: (d) => jsonView(d.input, { maxLines: 4, maxChars: 400 }) },
    { label: "Expected", cell: (d) => jsonView(d.expected, { maxLines: 4, maxChars: 400 }) },
    { label: "Created", cell: (d) => f.time(d.created_at), cls: "mono" },
  ];
  replace(body, panel(`Datapoints (${page.data.length}${page.next_cursor ? "+, first 200 shown" : ""})`,
    table(cols, page.data, { id: "datapoints", empty: "No datapoints registered (kestrel.add_datapoints)." })));
}
