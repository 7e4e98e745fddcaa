// Home: every project as a card with its totals (traces, errors, cost), newest first.

import { h, replace, enc } from "../dom.js";
import { api } from "../api.js";
import * as f from "../format.js";

/** Totals are fetched for this many projects; beyond that the cards show names only. */
const STATS_FOR = 60;

export async function render(ctx) {
  ctx.crumbs([["Projects"]]);
  ctx.title("Projects");
  const { data: projects } = await api("/projects", { signal: ctx.signal });
  projects.sort((a, b) => b.created_at - a.created_at);
  const head = h("div", { class: "page-head" },
    h("div", null, h("h1", null, "Projects"), h("div", { class: "sub" }, f.plural(projects.length, "project"))));
  if (!projects.length) {
    replace(ctx.root, head, h("div", { class: "panel empty" },
      "No projects yet. Point the SDK at this server (KESTREL_URL) and log a trace: its project appears here."));
    return;
  }
  const cards = projects.map((p, i) => {
    const stats = h("div", { class: "stats" }, h("span", { class: "muted" }, i < STATS_FOR ? "…" : ""));
    const card = h("a", { class: "card", href: `/ui/projects/${enc(p.name)}`, dataset: { project: p.name } },
      h("div", { class: "name" }, p.name),
      h("div", { class: "meta" }, `created ${f.ago(p.created_at)}`),
      stats);
    if (i < STATS_FOR) {
      api("/stats", { params: { project: p.name }, signal: ctx.signal }).then((st) => {
        replace(stats,
          h("span", null, h("b", null, f.count(st.traces)), " traces"),
          h("span", { class: st.errors ? "err-text" : null }, h("b", null, f.count(st.errors)), " errors"),
          h("span", null, h("b", null, f.cost(st.cost_usd)), " cost"),
          st.duration_ms_p50 !== null ? h("span", null, "p50 ", h("b", null, f.duration(st.duration_ms_p50))) : null);
      }).catch(() => replace(stats));
    }
    return card;
  });
  replace(ctx.root, head, h("div", { class: "cards", id: "projects" }, cards));
}
