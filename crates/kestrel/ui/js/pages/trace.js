// A trace: header and figures, error and traceback, a timeline of its turns, the conversation
// (paged, see conversation.js), and on the side its grades (with a form to add one by hand),
// tags, metadata and ids. `/ui/traces/ID?page=N` or `?item=N` opens the conversation there.
//
// Big traces: the whole trace (every item, for the timeline and the find box) is fetched at once,
// and meanwhile the summary and the one page of items being opened are fetched too
// (`/traces?q=trace:ID`, `/traces/ID/items`); if they come first and the trace is big, that page
// is drawn at once, then replaced by the full page when the whole trace has arrived.

import { h, s, replace, enc, url, panel, figures } from "../dom.js";
import { api } from "../api.js";
import * as f from "../format.js";
import { jsonView } from "../json.js";
import { conversation, itemView, PAGE_SIZE } from "./conversation.js";

/** Traces with more items than this get the quick first paint. */
const QUICK_ITEMS = 2_000;

const GRADER_KEY = "kestrel.grader";

export async function render(ctx) {
  const id = ctx.params.id;
  const whole = api(`/traces/${enc(id)}`, { signal: ctx.signal });
  const quickMs = await quickPaint(ctx, id, whole);
  const t = await whole;
  const fetched = performance.now();
  const crumbs = [["Projects", "/ui/"]];
  if (t.project) crumbs.push([t.project, `/ui/projects/${enc(t.project)}`]);
  if (t.run_id && t.run_id !== t.project) crumbs.push([t.run_id.slice(0, 16), `/ui/runs/${enc(t.run_id)}`]);
  if (t.run_id && t.step !== null && t.run_id !== t.project) crumbs.push([`Step ${t.step}`, `/ui/runs/${enc(t.run_id)}/steps/${t.step}`]);
  crumbs.push([id]);
  ctx.crumbs(crumbs);
  ctx.title(`Trace ${id}`);

  const page = Number(ctx.query.get("page")) || 1;
  const item = Number(ctx.query.get("item")) || 0;
  const conv = conversation(t, {
    start: item || (page - 1) * PAGE_SIZE + 1,
    onPage: (p) => history.replaceState(null, "", url(location.pathname, { page: p > 1 ? p : null })),
  });

  const isRun = t.run_id && t.run_id !== t.project;
  const head = h("div", { class: "page-head" },
    h("div", { style: { minWidth: 0 } },
      h("div", { class: "kicker" }, "Trace"),
      h("h1", { class: "mono", style: { fontSize: "18px", overflowWrap: "anywhere" } }, id, " ", f.statusBadge(t.status)),
      h("div", { class: "sub" },
        [t.project ? h("a", { href: `/ui/projects/${enc(t.project)}` }, t.project) : null,
          isRun ? h("a", { href: `/ui/runs/${enc(t.run_id)}` }, "run ", t.run_id) : null,
          isRun && t.step !== null ? h("a", { href: `/ui/runs/${enc(t.run_id)}/steps/${t.step}` }, "step ", t.step) : null,
          t.phase ? f.phaseTag(t.phase) : null,
          t.datapoint_id ? h("span", null, "datapoint ", h("span", { class: "mono" }, t.datapoint_id)) : null,
          h("span", null, f.time(t.started_at))].filter(Boolean).flatMap((x, i) => (i ? [" · ", x] : [x])))),
    h("div", { class: "actions" }, downloadButton(t)));

  const figs = figures([
    ["Model", t.model_name || "—"],
    ["Duration", f.duration(t.duration_ms)],
    ["Tokens", `${f.count(t.input_tokens)} in · ${f.count(t.output_tokens)} out`],
    ["Cost", f.cost(t.cost_usd)],
    ["Messages", f.int(t.messages)],
    ["Tool calls", f.int(t.tool_calls)],
    ["Items", f.int(t.item_count)],
    ["Turns", f.int(t.turn_count)],
  ]);

  const error = t.error || t.traceback ? h("div", { class: "errbox", id: "trace-error" },
    h("div", { class: "errmsg" }, t.error || "error"),
    t.traceback ? h("pre", null, t.traceback) : null) : null;

  const grades = gradesPanel(t);
  const side = h("aside", { class: "side" },
    grades.el,
    t.tags.length ? panel("Tags", h("div", { id: "tags" }, t.tags.map((tag) => h("a", { class: "chip", href: url("/ui/search", { q: f.term("tag", tag) }) }, tag)))) : null,
    Object.keys(t.metadata).length ? panel("Metadata", metadataView(t.metadata)) : null,
    panel("Details", h("dl", { class: "kv" },
      kv("Trace", h("span", { class: "mono" }, t.trace_id)),
      kv("Project", t.project),
      kv("Run", t.run_id ? h("span", { class: "mono" }, t.run_id) : null),
      kv("Phase", t.phase),
      kv("Step", t.step),
      kv("Datapoint", t.datapoint_id),
      kv("Model", t.model_name ? h("a", { href: url("/ui/search", { q: f.term("model", t.model_name) }) }, t.model_name) : null),
      kv("Started", f.time(t.started_at)),
      kv("Ended", t.ended_at ? f.time(t.ended_at) : "still open"))));

  replace(ctx.root, head, figs, error,
    h("div", { class: "trace-grid" },
      h("div", null,
        panel(`Timeline · ${f.plural(t.turns.length, "turn")}`, timeline(t, conv.showItem), { cls: "timeline-panel" }),
        panel("Conversation", conv.el)),
      side));
  if (item) conv.showItem(item);
  // Time to first render of the conversation, read by the end-to-end tests.
  requestAnimationFrame(() => {
    window.__kestrelTrace = { fetchedMs: fetched, renderedMs: performance.now(), items: t.items.length, quickMs };
  });
}

/**
 * Draws the summary and the page of items being opened if they arrive before the whole trace
 * and the trace is big. Resolves (with the time of that paint, or null) once drawn or skipped;
 * never rejects: the whole trace's fetch reports errors.
 */
async function quickPaint(ctx, id, whole) {
  const page = Number(ctx.query.get("page")) || 1;
  const item = Number(ctx.query.get("item")) || 0;
  const from = Math.floor(Math.max(0, (item || (page - 1) * PAGE_SIZE + 1) - 1) / PAGE_SIZE) * PAGE_SIZE;
  const quick = Promise.all([
    api("/traces", { params: { q: f.term("trace", id), limit: 1 }, signal: ctx.signal }),
    api(`/traces/${enc(id)}/items`, { params: { offset: from, limit: PAGE_SIZE }, signal: ctx.signal }),
  ]).then(([list, items]) => ({ summary: list.data[0], items }), () => null);
  const first = await Promise.race([whole.then(() => null, () => null), quick]);
  if (!first || !first.summary || first.items.total <= QUICK_ITEMS) return null;
  const t = first.summary;
  const t0 = t.started_at || first.items.items[0]?.ts || 0;
  const n = first.items.total;
  replace(ctx.root,
    h("div", { class: "page-head" },
      h("div", { style: { minWidth: 0 } },
        h("div", { class: "kicker" }, "Trace"),
        h("h1", { class: "mono", style: { fontSize: "18px", overflowWrap: "anywhere" } }, id, " ", f.statusBadge(t.status)))),
    figures([
      ["Model", t.model_name || "—"],
      ["Duration", f.duration(t.duration_ms)],
      ["Tokens", `${f.count(t.input_tokens)} in · ${f.count(t.output_tokens)} out`],
      ["Cost", f.cost(t.cost_usd)],
      ["Items", f.int(n)],
    ]),
    panel("Conversation", h("div", null,
      h("div", { class: "conv-tools" }, h("span", { id: "conv-loading" },
        `Items ${f.int(from + 1)}–${f.int(Math.min(n, from + PAGE_SIZE))} of ${f.int(n)} · loading the rest…`)),
      h("div", { class: "conv", id: "conversation-quick" }, first.items.items.map((it, k) => itemView(it, from + k, t0))))));
  return performance.now();
}

function kv(label, value) {
  if (value === null || value === undefined || value === "") return null;
  return [h("dt", null, label), h("dd", null, value)];
}

function metadataView(meta) {
  return h("dl", { class: "kv", id: "metadata" }, Object.entries(meta).map(([k, v]) =>
    kv(k, typeof v === "string" || typeof v === "number" || typeof v === "boolean"
      ? h("a", { href: url("/ui/search", { q: f.metaTerm(k, v) }), class: "mono" }, String(v))
      : jsonView(v, { maxLines: 8 }))));
}

function downloadButton(t) {
  const a = h("a", { class: "btn", href: "#", download: `${t.trace_id}.json` }, "Download JSON");
  a.addEventListener("click", () => {
    const blob = new Blob([JSON.stringify(t, null, 2)], { type: "application/json" });
    a.href = URL.createObjectURL(blob);
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  });
  return a;
}

/** Turns as bars on the trace's time axis, and the items' density below them. */
function timeline(t, showItem) {
  const items = t.items;
  const t0 = Math.min(t.started_at ?? Infinity, items[0]?.ts ?? Infinity, t.turns[0]?.started_at ?? Infinity);
  let t1 = Math.max(t.ended_at ?? 0, items[items.length - 1]?.ts ?? 0, ...t.turns.map((u) => u.ended_at ?? u.started_at));
  if (!Number.isFinite(t0)) return h("div", { class: "muted" }, "No times recorded.");
  if (t1 <= t0) t1 = t0 + 1000;
  const pct = (v) => `${(100 * (v - t0)) / (t1 - t0)}%`;
  const firstItem = new Map();
  items.forEach((it, i) => { if (it.turn_id && !firstItem.has(it.turn_id)) firstItem.set(it.turn_id, i + 1); });
  const bars = t.turns.map((u, i) => {
    const end = u.ended_at ?? t1;
    const color = f.STATUS_COLORS[u.status || "RUNNING"] || f.STATUS_COLORS.RUNNING;
    const bar = h("div", {
      class: "bar turn-bar", dataset: { turn: i + 1 },
      title: `Turn ${i + 1}: ${f.time(u.started_at)}, ${f.duration((end - u.started_at) / 1000)}, ${u.status || "RUNNING"}`,
      style: { left: pct(u.started_at), width: `calc(${pct(end)} - ${pct(u.started_at)})`, background: color },
    }, h("span", null, `Turn ${i + 1}`));
    bar.addEventListener("click", () => { const n = firstItem.get(u.turn_id); if (n) showItem(n); });
    return bar;
  });
  // Item density: counts per bin, drawn as bars.
  const BINS = 160;
  const bins = new Array(BINS).fill(0);
  for (const it of items) bins[Math.min(BINS - 1, Math.floor(((it.ts - t0) / (t1 - t0)) * BINS))] += 1;
  const max = Math.max(1, ...bins);
  const ticks = s("svg", { class: "ticks", viewBox: `0 0 ${BINS} 18`, preserveAspectRatio: "none", width: "100%", height: 18 },
    bins.map((c, i) => c ? s("rect", { x: i + 0.1, width: 0.8, y: 18 - Math.max(2, (18 * c) / max), height: Math.max(2, (18 * c) / max), fill: "#94a3b8" }) : null));
  return h("div", { id: "timeline" },
    h("div", { class: "timeline" }, bars, ticks),
    h("div", { class: "timeline-scale" }, h("span", null, f.time(t0)), h("span", null, `${f.plural(items.length, "item")} over ${f.duration((t1 - t0) / 1000)}`), h("span", null, f.time(t1))));
}

/** A typed grade value from the form's text: number, true/false, or a label. */
export function parseGradeValue(text) {
  const v = text.trim();
  if (/^(true|false)$/i.test(v)) return v.toLowerCase() === "true";
  if (v !== "" && Number.isFinite(Number(v))) return Number(v);
  return v;
}

function gradesPanel(t) {
  const itemsList = h("div", { id: "grade-list" });
  const gradeItems = t.items.filter((it) => it.type === "grade");
  const drawList = () => replace(itemsList, gradeItems.length
    ? gradeItems.slice().reverse().map((g) => h("div", { class: "gradeitem", style: { marginBottom: "6px" } },
      h("span", { class: "grade" }, h("b", null, g.name), f.gradeValue(g.value)),
      h("span", { class: "muted" }, g.grader ? `by ${g.grader}` : ""),
      g.comment ? h("span", { title: g.comment, style: { overflow: "hidden", textOverflow: "ellipsis", whiteSpace: "nowrap" } }, g.comment) : null))
    : h("div", { class: "muted" }, "No grade yet."));
  drawList();

  const names = [...new Set(gradeItems.map((g) => g.name).concat(["reward", "correct", "label"]))];
  const name = h("input", { class: "input", id: "grade-name", placeholder: "name", "aria-label": "grade name", list: "grade-names", value: gradeItems[0]?.name || "", required: true });
  const value = h("input", { class: "input", id: "grade-value", placeholder: "value", "aria-label": "grade value", required: true });
  const comment = h("input", { class: "input full", id: "grade-comment", placeholder: "comment (optional)" });
  let stored = "";
  try { stored = localStorage.getItem(GRADER_KEY) || ""; } catch { /* no storage */ }
  const grader = h("input", { class: "input full", id: "grade-grader", placeholder: "grader: your name (optional)", value: stored });
  const msg = h("div", { class: "formmsg", id: "grade-msg", role: "status" });
  const button = h("button", { class: "btn primary full", type: "submit", id: "grade-submit" }, "Add grade");
  const form = h("form", { class: "gradeform", id: "grade-form" },
    name, value, h("div", { class: "formhint" }, "A value is a number, true/false, or a label such as needs-review."),
    comment, grader, button,
    h("datalist", { id: "grade-names" }, names.map((n) => h("option", { value: n }))));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const body = { name: name.value.trim(), value: parseGradeValue(value.value) };
    if (comment.value.trim()) body.comment = comment.value.trim();
    const who = grader.value.trim();
    body.grader = who ? `ui:${who}` : "ui";
    try { localStorage.setItem(GRADER_KEY, who); } catch { /* no storage */ }
    button.disabled = true;
    msg.className = "formmsg";
    msg.textContent = "Saving…";
    try {
      const stored = await api(`/traces/${enc(t.trace_id)}/grades`, { method: "POST", body });
      gradeItems.push(stored);
      drawList();
      msg.className = "formmsg ok";
      msg.textContent = `Saved ${stored.name} = ${f.gradeValue(stored.value)}.`;
      value.value = "";
      comment.value = "";
    } catch (err) {
      msg.className = "formmsg bad";
      msg.textContent = err.message;
    } finally {
      button.disabled = false;
    }
  });
  const el = panel("Grades", [
    t.grades.length ? h("div", { style: { marginBottom: "8px" } }, f.gradeChips(t.grades)) : null,
    itemsList,
    h("h3", { style: { marginTop: "14px" } }, "Grade by hand"),
    form, msg], { cls: "grades-panel" });
  el.id = "grades";
  return { el };
}
