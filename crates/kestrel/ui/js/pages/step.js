// One training step: its figures and its rollouts sorted by a grade (best first by default),
// `/ui/runs/ID/steps/N?grade=reward&order=desc`. A click on a rollout opens its trace.

import { h, replace, enc, url, panel, figures, seg } from "../dom.js";
import { api } from "../api.js";
import * as f from "../format.js";
import { pagedTraces, traceColumns } from "../table.js";

export async function render(ctx) {
  const id = ctx.params.id;
  const n = Number(ctx.params.step);
  const [run, step, all] = await Promise.all([
    api(`/runs/${enc(id)}`, { signal: ctx.signal }),
    api(`/runs/${enc(id)}/steps/${n}`, { signal: ctx.signal }),
    api(`/runs/${enc(id)}/steps`, { signal: ctx.signal }).then((p) => p.data.map((s) => s.step).sort((a, b) => a - b)),
  ]);
  const label = run.name || run.id;
  ctx.crumbs([["Projects", "/ui/"], [run.project, `/ui/projects/${enc(run.project)}`], [label, `/ui/runs/${enc(id)}`], [`Step ${n}`]]);
  ctx.title(`Step ${n} · ${label}`);
  const names = Object.keys(step.grades).sort((a, b) => (a === "reward" ? -1 : b === "reward" ? 1 : a.localeCompare(b)));
  const grade = ctx.query.get("grade") || names[0] || null;
  const order = ctx.query.get("order") === "asc" ? "asc" : "desc";
  const here = (over) => url(`/ui/runs/${enc(id)}/steps/${n}`, { grade, order, ...over });
  const at = all.indexOf(n);
  const prev = at > 0 ? all[at - 1] : null;
  const next = at >= 0 && at < all.length - 1 ? all[at + 1] : null;
  const g = grade ? step.grades[grade] : null;

  const head = h("div", { class: "page-head" },
    h("div", null, h("div", { class: "kicker" }, "Training step"), h("h1", null, `Step ${n}`),
      h("div", { class: "sub" }, "of ", h("a", { href: `/ui/runs/${enc(id)}` }, label))),
    h("div", { class: "actions" },
      h("a", { class: "btn", href: prev === null ? null : url(`/ui/runs/${enc(id)}/steps/${prev}`, { grade, order }), "aria-disabled": prev === null ? "true" : null, id: "prev-step" }, "‹ Step ", prev ?? "—"),
      h("a", { class: "btn", href: next === null ? null : url(`/ui/runs/${enc(id)}/steps/${next}`, { grade, order }), "aria-disabled": next === null ? "true" : null, id: "next-step" }, "Step ", next ?? "—", " ›")));
  const figs = figures([
    ["Rollouts", f.count(step.rollouts)],
    ["Status", f.statusMix(step.status)],
    g ? [`${grade} mean`, f.num(g.mean)] : null,
    g ? [`${grade} min – max`, `${f.num(g.min)} – ${f.num(g.max)}`] : null,
    g ? [`${grade} median`, f.num(g.p50)] : null,
    ["Tokens", f.count(step.input_tokens + step.output_tokens)],
    ["Cost", f.cost(step.cost_usd)],
    ["p50", f.duration(step.duration_ms_p50)],
  ]);
  const controls = h("div", { class: "actions" },
    names.length > 1 ? seg(names.map((nm) => [nm, nm, here({ grade: nm })]), grade) : null,
    grade ? seg([["desc", "Best first", here({ order: "desc" })], ["asc", "Worst first", here({ order: "asc" })]], order) : null);
  const params = { step: n, ...(grade ? { sort: order === "asc" ? "grade_asc" : "grade_desc", grade } : {}) };
  const list = await pagedTraces(`/runs/${enc(id)}/traces`, params, {
    signal: ctx.signal, id: "rollouts", columns: traceColumns({ grade }), empty: "No rollouts in this step.",
  });
  replace(ctx.root, head, figs,
    h("section", { class: "panel flush" },
      h("div", { class: "panel-head", style: { padding: "14px 16px 4px" } },
        h("h2", null, grade ? `Rollouts by ${grade}` : "Rollouts"), controls),
      list));
}
