// A trace's items as the conversation they were: messages by role, tool calls with their
// arguments and results, events and grades, in logged order, with turn separators.
//
// Big traces: the items are drawn a page at a time (PAGE_SIZE), never all at once, so a trace of
// 30,000 items paints as fast as one of 100. Long text and JSON are folded and rendered in full
// only when opened. Filters (kinds, text) and the pager work over an index list, not over DOM.

import { h, replace } from "../dom.js";
import * as f from "../format.js";
import { textView, jsonView, valueView, parseMaybeJson } from "../json.js";

export const PAGE_SIZE = 100;
const KINDS = [["message", "Messages"], ["tool_execution", "Tools"], ["event", "Events"], ["grade", "Grades"]];

function rel(ts, t0) {
  if (!ts || !t0) return "";
  const ms = (ts - t0) / 1000;
  return ms < 0 ? "" : `+${f.duration(ms)}`;
}

function head(who, idx, item, t0, extra = [], right = []) {
  return h("div", { class: "msg-head" },
    h("span", { class: "who" }, who), extra,
    h("span", { class: "right" }, right, h("span", { title: f.time(item.ts) }, rel(item.ts, t0)), h("span", { class: "idx" }, `#${idx + 1}`)));
}

function contentView(content, role) {
  const opts = role === "system" || role === "developer" ? { maxLines: 8, maxChars: 800 } : {};
  if (content === null || content === undefined) return null;
  if (typeof content === "string") {
    if (!content) return h("span", { class: "muted" }, "(empty)");
    // Tool messages usually carry a JSON result as a string: show it pretty.
    return role === "tool" ? valueView(content, opts) : textView(content, opts);
  }
  if (Array.isArray(content)) {
    return content.map((part) => {
      if (typeof part === "string") return textView(part, opts);
      if (part && typeof part === "object") {
        if (part.type === "text" || part.type === "input_text" || part.type === "output_text") return textView(part.text ?? "", opts);
        if (/image|audio|file/.test(String(part.type))) return h("div", { class: "part-img" }, `[${part.type}]`);
        if (part.type === "tool_use") return callView(part.name, part.id, part.input);
        if (part.type === "tool_result") return h("div", { class: "call" }, h("div", { class: "sublabel" }, `result of ${part.tool_use_id || "tool"}`), valueView(part.content));
      }
      return jsonView(part);
    });
  }
  return jsonView(content);
}

function callView(name, id, args) {
  return h("div", { class: "call" },
    h("div", null, h("span", { class: "fn" }, name || "(tool)"), id ? h("span", { class: "muted mono" }, `  ${id}`) : null),
    args === undefined || args === null ? null : valueView(parseMaybeJson(args), { maxLines: 20 }));
}

function toolCalls(calls) {
  if (!calls) return null;
  const list = Array.isArray(calls) ? calls : [calls];
  return list.map((c) => {
    if (c && typeof c === "object") {
      const fn = c.function || c;
      return callView(fn.name, c.id, fn.arguments ?? fn.input ?? c.input);
    }
    return jsonView(c);
  });
}

function tokens(m) {
  const parts = [];
  if (m.input_tokens !== undefined || m.output_tokens !== undefined) parts.push(`${f.count(m.input_tokens || 0)} in · ${f.count(m.output_tokens || 0)} out`);
  if (m.cost_usd !== undefined) parts.push(f.cost(m.cost_usd));
  return parts.map((p) => h("span", null, p));
}

/** One item as a card or a line. */
export function itemView(item, idx, t0) {
  const attrs = { id: `item-${idx + 1}`, dataset: { idx: idx + 1, kind: item.type } };
  if (item.type === "message") {
    const role = String(item.role || "message").toLowerCase();
    return h("div", { ...attrs, class: ["msg", "conv-item", `role-${role}`] },
      head(role, idx, item, t0,
        [item.name ? h("span", { class: "mono" }, item.name) : null,
          item.tool_call_id ? h("span", { class: "mono", title: "tool call id" }, `↳ ${item.tool_call_id}`) : null,
          item.model ? h("span", null, item.model) : null],
        tokens(item)),
      h("div", { class: "msg-body" }, contentView(item.content, role), toolCalls(item.tool_calls),
        item.metadata && Object.keys(item.metadata).length ? [h("div", { class: "sublabel" }, "metadata"), jsonView(item.metadata, { maxLines: 6 })] : null));
  }
  if (item.type === "tool_execution") {
    return h("div", { ...attrs, class: ["msg", "conv-item", "kind-tool_execution"] },
      head("tool", idx, item, t0,
        [h("span", { class: "fn mono" }, item.name), item.call_id ? h("span", { class: "mono" }, item.call_id) : null,
          item.requestor ? h("span", null, `by ${item.requestor}`) : null],
        item.duration_ms !== undefined ? [h("span", null, f.duration(item.duration_ms))] : []),
      h("div", { class: "msg-body" },
        item.arguments !== undefined ? [h("div", { class: "sublabel" }, "arguments"), valueView(item.arguments, { maxLines: 20 })] : null,
        item.result !== undefined ? [h("div", { class: "sublabel" }, "result"), valueView(item.result, { maxLines: 20 })] : null,
        item.error ? [h("div", { class: "sublabel" }, "error"), h("div", { class: "text err-text" }, item.error)] : null));
  }
  if (item.type === "event") {
    const lvl = String(item.level || "info").toLowerCase();
    return h("div", { ...attrs, class: ["event", "conv-item"] },
      h("span", { class: ["lvl", `lvl-${lvl}`] }, lvl), h("b", null, item.name),
      h("span", { class: "data", title: item.data === undefined ? "" : JSON.stringify(item.data) }, item.data === undefined ? "" : JSON.stringify(item.data)),
      h("span", { class: "muted" }, rel(item.ts, t0)), h("span", { class: "muted" }, `#${idx + 1}`));
  }
  if (item.type === "grade") {
    return h("div", { ...attrs, class: ["gradeitem", "conv-item"] },
      h("span", { class: "grade" }, h("b", null, item.name), f.gradeValue(item.value)),
      item.grader ? h("span", { class: "muted" }, `by ${item.grader}`) : null,
      item.comment ? h("span", null, item.comment) : null,
      h("span", { class: "muted", style: { marginLeft: "auto" } }, rel(item.ts, t0)), h("span", { class: "muted" }, `#${idx + 1}`));
  }
  return h("div", { ...attrs, class: ["msg", "conv-item"] }, head(item.type || "item", idx, item, t0), h("div", { class: "msg-body" }, jsonView(item)));
}

/**
 * The conversation of a trace. `start`: 1-based item number to show first (its page);
 * `onPage(page)`: called when the page changes (to keep it in the URL). Returns
 * {el, showItem(n)}.
 */
export function conversation(trace, { start = 1, onPage = () => {} } = {}) {
  const items = trace.items;
  const t0 = trace.started_at || items[0]?.ts || 0;
  const turnNo = new Map(trace.turns.map((t, i) => [t.turn_id, i + 1]));
  const multiTurn = trace.turns.length > 1;
  const kinds = new Set(KINDS.map(([k]) => k));
  let find = "";
  let haystack = null; // lazily built lowercase text of each item, for the find box
  let index = items.map((_, i) => i);
  let page = 0;
  let highlight = null;

  const list = h("div", { class: "conv", id: "conversation" });
  const info = h("span", { id: "conv-info" });
  const pageInput = h("input", { class: "input", type: "number", min: 1, id: "conv-page", "aria-label": "Page" });
  const pages = () => Math.max(1, Math.ceil(index.length / PAGE_SIZE));
  const prevBtn = h("button", { class: "btn small", type: "button", id: "conv-prev" }, "‹ Prev");
  const nextBtn = h("button", { class: "btn small", type: "button", id: "conv-next" }, "Next ›");
  const totalPages = h("span");
  const pager = h("div", { class: "pager" }, prevBtn, "Page", pageInput, totalPages, nextBtn);
  const bottomPager = h("div", { class: "pager", style: { justifyContent: "center", marginTop: "12px" } });

  const draw = () => {
    const from = page * PAGE_SIZE;
    const slice = index.slice(from, from + PAGE_SIZE);
    const out = [];
    let prevTurn = from > 0 ? items[index[from - 1]]?.turn_id : undefined;
    for (const i of slice) {
      const it = items[i];
      if (multiTurn && it.turn_id && it.turn_id !== prevTurn) {
        const t = trace.turns[turnNo.get(it.turn_id) - 1];
        out.push(h("div", { class: "turn-sep", dataset: { turn: turnNo.get(it.turn_id) } },
          `Turn ${turnNo.get(it.turn_id)} of ${trace.turns.length}`, t ? ` · ${f.time(t.started_at)}` : "", t?.status ? " · " : "", t?.status ? f.statusBadge(t.status) : null));
      }
      prevTurn = it.turn_id;
      const el = itemView(it, i, t0);
      if (highlight === i) el.classList.add("hl");
      out.push(el);
    }
    if (!slice.length) out.push(h("div", { class: "empty" }, items.length ? "No item matches these filters." : "This trace has no items."));
    replace(list, out);
    const n = index.length;
    info.textContent = n ? `Items ${f.int(from + 1)}–${f.int(Math.min(n, from + PAGE_SIZE))} of ${f.int(n)}${n !== items.length ? ` (filtered from ${f.int(items.length)})` : ""}` : "";
    pageInput.value = String(page + 1);
    pageInput.max = String(pages());
    totalPages.textContent = `of ${f.int(pages())}`;
    prevBtn.disabled = page === 0;
    nextBtn.disabled = page >= pages() - 1;
    pager.hidden = pages() < 2;
    replace(bottomPager, pages() > 1 ? [
      h("button", { class: "btn small", type: "button", disabled: page === 0, onclick: () => go(page - 1, true) }, "‹ Prev"),
      `Page ${f.int(page + 1)} of ${f.int(pages())}`,
      h("button", { class: "btn small", type: "button", disabled: page >= pages() - 1, onclick: () => go(page + 1, true) }, "Next ›")] : []);
  };
  const go = (p, scroll = false) => {
    page = Math.max(0, Math.min(pages() - 1, p));
    draw();
    onPage(page + 1);
    if (scroll) list.scrollIntoView({ block: "start" });
  };
  prevBtn.addEventListener("click", () => go(page - 1));
  nextBtn.addEventListener("click", () => go(page + 1));
  pageInput.addEventListener("change", () => go(Number(pageInput.value) - 1));

  const refilter = () => {
    const needle = find.toLowerCase();
    if (needle && !haystack) haystack = items.map((it) => JSON.stringify(it).toLowerCase());
    index = [];
    for (let i = 0; i < items.length; i++) {
      if (!kinds.has(items[i].type) && KINDS.some(([k]) => k === items[i].type)) continue;
      if (needle && !haystack[i].includes(needle)) continue;
      index.push(i);
    }
    go(0);
  };
  const counts = {};
  for (const it of items) counts[it.type] = (counts[it.type] || 0) + 1;
  const boxes = KINDS.filter(([k]) => counts[k]).map(([k, label]) => {
    const cb = h("input", { type: "checkbox", checked: true, dataset: { kind: k } });
    cb.addEventListener("change", () => { if (cb.checked) kinds.add(k); else kinds.delete(k); refilter(); });
    return h("label", null, cb, `${label} (${f.int(counts[k])})`);
  });
  const findBox = h("input", { class: "input", type: "search", placeholder: "Find in items", id: "conv-find", style: { width: "200px" } });
  let timer = null;
  findBox.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(() => { find = findBox.value.trim(); refilter(); }, 200); });

  const showItem = (n) => {
    const i = n - 1;
    if (i < 0 || i >= items.length) return;
    let pos = index.indexOf(i);
    if (pos < 0) { kinds.add(items[i].type); find = ""; findBox.value = ""; index = items.map((_, k) => k); pos = i; }
    highlight = i;
    go(Math.floor(pos / PAGE_SIZE));
    document.getElementById(`item-${n}`)?.scrollIntoView({ block: "center" });
  };

  const startIdx = Math.max(0, Math.min(items.length - 1, start - 1));
  page = Math.floor(startIdx / PAGE_SIZE);
  draw();
  const el = h("div", null,
    h("div", { class: "conv-tools" }, boxes, findBox, h("span", { style: { marginLeft: "auto" } }), info, pager),
    list, bottomPager);
  return { el, showItem };
}
