// Charts drawn as plain SVG: bands (min/max), lines with points, stacked bars, on a linear x
// axis (training steps or times). Hovering shows every series' value at the nearest x; clicking
// (or Enter on a focused point) calls `onPick(index)`.
//
// Limits: x values must be sorted ascending; null values leave gaps. The chart redraws itself
// when its container's width changes, so it always fills the panel at 1:1 pixels (crisp text).

import { h, s, clear } from "./dom.js";

const M = { top: 10, right: 14, bottom: 26, left: 56 };

/** Round tick values covering [lo, hi], about `n` of them. */
export function niceTicks(lo, hi, n = 5) {
  if (!(hi > lo)) { const d = Math.abs(lo) || 1; lo -= d / 2; hi += d / 2; }
  const raw = (hi - lo) / Math.max(1, n);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  // Ticks from the round value at or below `lo` to the one at or above `hi`: the data never
  // pokes out of the labelled range.
  const end = Math.ceil(hi / step - 1e-9) * step;
  for (let v = Math.floor(lo / step + 1e-9) * step; v <= end + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return { ticks: out, step, lo: Math.min(lo, out[0] ?? lo), hi: Math.max(hi, out[out.length - 1] ?? hi) };
}

function extent(layers) {
  let lo = Infinity, hi = -Infinity;
  const see = (v) => { if (v !== null && v !== undefined && Number.isFinite(v)) { lo = Math.min(lo, v); hi = Math.max(hi, v); } };
  for (const l of layers) {
    if (l.type === "band") { l.lo.forEach(see); l.hi.forEach(see); }
    else if (l.type === "line") l.values.forEach(see);
    else if (l.type === "bars") {
      const n = l.series[0]?.values.length || 0;
      for (let i = 0; i < n; i++) see(l.series.reduce((a, sr) => a + (sr.values[i] || 0), 0));
      see(0);
    }
  }
  return lo === Infinity ? [0, 1] : [lo, hi];
}

function legendOf(layers) {
  const items = [];
  for (const l of layers) {
    if (l.legend === false) continue;
    if (l.type === "bars") l.series.forEach((sr) => items.push([sr.name, sr.color, 1]));
    else items.push([l.name, l.color, l.type === "band" ? 0.25 : 1]);
  }
  if (items.length < 2) return null;
  return h("div", { class: "legend" }, items.map(([name, color, op]) =>
    h("span", null, h("span", { class: "sw", style: { background: color, opacity: op } }), name)));
}

/**
 * An x/y chart. Options: `x` (sorted numbers), `layers`, `height`, `xFormat`, `yFormat`,
 * `yMin`/`yMax` (fixed ends), `title(i)` (tooltip heading), `onPick(i)`, `pointAttrs(i)`,
 * `id` (for tests and links).
 */
export function xyChart(opts) {
  const wrap = h("div", { class: "chart", id: opts.id || null });
  const legend = legendOf(opts.layers);
  const holder = h("div");
  if (legend) wrap.appendChild(legend);
  wrap.appendChild(holder);
  let lastWidth = 0;
  const ro = new ResizeObserver(() => {
    const w = Math.floor(holder.clientWidth);
    if (w > 0 && w !== lastWidth) { lastWidth = w; draw(holder, w, opts); }
  });
  ro.observe(holder);
  return wrap;
}

function draw(holder, width, o) {
  clear(holder);
  const height = o.height || 220;
  const xs = o.x;
  const n = xs.length;
  const pw = width - M.left - M.right;
  const ph = height - M.top - M.bottom;
  const hasBars = o.layers.some((l) => l.type === "bars");

  let gap = Infinity;
  for (let i = 1; i < n; i++) gap = Math.min(gap, xs[i] - xs[i - 1]);
  if (!Number.isFinite(gap) || gap <= 0) gap = o.xGap || 1;
  let x0 = n ? xs[0] : 0, x1 = n ? xs[n - 1] : 1;
  if (hasBars || n < 2) { x0 -= gap / 2; x1 += gap / 2; }
  if (x1 === x0) x1 = x0 + 1;
  const X = (v) => M.left + ((v - x0) / (x1 - x0)) * pw;

  let [ylo, yhi] = extent(o.layers);
  if (o.yMin !== undefined) ylo = Math.min(ylo, o.yMin);
  if (o.yMax !== undefined) yhi = Math.max(yhi, o.yMax);
  const yt = niceTicks(ylo, yhi, Math.max(2, Math.round(ph / 45)));
  const Y = (v) => M.top + ph - ((v - yt.lo) / (yt.hi - yt.lo || 1)) * ph;
  const yf = o.yFormat || ((v) => String(v));
  const xf = o.xFormat || ((v) => String(v));

  const svg = s("svg", { width, height, role: "img", "aria-label": o.label || "chart" });
  // Grid and y axis.
  const grid = s("g", { class: "grid" });
  const yaxis = s("g", { class: "axis" });
  for (const t of yt.ticks) {
    grid.appendChild(s("line", { x1: M.left, x2: M.left + pw, y1: Y(t), y2: Y(t) }));
    yaxis.appendChild(s("text", { x: M.left - 8, y: Y(t) + 4, "text-anchor": "end" }, yf(t)));
  }
  svg.append(grid, yaxis);
  // X axis: integer ticks for steps, ~7 for times.
  const xaxis = s("g", { class: "axis" });
  xaxis.appendChild(s("line", { x1: M.left, x2: M.left + pw, y1: M.top + ph, y2: M.top + ph }));
  const want = Math.max(2, Math.floor(pw / 90));
  let xticks = niceTicks(xs[0] ?? 0, xs[n - 1] ?? 1, want).ticks.filter((t) => t >= x0 && t <= x1);
  if (o.xInteger) xticks = xticks.filter((t) => Number.isInteger(t));
  if (o.xTicks) xticks = o.xTicks(x0, x1, want);
  for (const t of xticks) {
    xaxis.appendChild(s("text", { x: X(t), y: M.top + ph + 17, "text-anchor": "middle" }, xf(t)));
  }
  svg.appendChild(xaxis);

  // Layers, in order.
  const bw = Math.max(1, Math.min(40, (gap / (x1 - x0)) * pw * 0.72));
  for (const l of o.layers) {
    if (l.type === "bars") {
      const g = s("g");
      for (let i = 0; i < n; i++) {
        let acc = 0;
        for (const sr of l.series) {
          const v = sr.values[i] || 0;
          if (v <= 0) continue;
          const yTop = Y(acc + v), yBot = Y(acc);
          g.appendChild(s("rect", { x: X(xs[i]) - bw / 2, y: yTop, width: bw, height: Math.max(0.5, yBot - yTop), fill: sr.color, rx: Math.min(2, bw / 4) }));
          acc += v;
        }
      }
      svg.appendChild(g);
    } else if (l.type === "band") {
      for (const seg of segments(n, (i) => l.lo[i] !== null && l.lo[i] !== undefined && l.hi[i] !== null && l.hi[i] !== undefined)) {
        const top = seg.map((i) => `${X(xs[i])},${Y(l.hi[i])}`);
        const bot = seg.slice().reverse().map((i) => `${X(xs[i])},${Y(l.lo[i])}`);
        if (seg.length === 1) {
          const i = seg[0];
          svg.appendChild(s("line", { x1: X(xs[i]), x2: X(xs[i]), y1: Y(l.lo[i]), y2: Y(l.hi[i]), stroke: l.color, "stroke-opacity": 0.35, "stroke-width": 6 }));
        } else {
          svg.appendChild(s("polygon", { points: top.concat(bot).join(" "), fill: l.color, "fill-opacity": 0.14, stroke: "none" }));
        }
      }
    } else if (l.type === "line") {
      for (const seg of segments(n, (i) => l.values[i] !== null && l.values[i] !== undefined)) {
        if (seg.length > 1) {
          const d = seg.map((i, k) => `${k ? "L" : "M"}${X(xs[i]).toFixed(1)},${Y(l.values[i]).toFixed(1)}`).join("");
          svg.appendChild(s("path", { d, fill: "none", stroke: l.color, "stroke-width": l.width || 2, "stroke-dasharray": l.dash || null, "stroke-linejoin": "round" }));
        }
      }
    }
  }

  // Hover guide, tooltip and picking.
  const guide = s("line", { class: "guide", y1: M.top, y2: M.top + ph, visibility: "hidden" });
  svg.appendChild(guide);
  const tip = h("div", { class: "tip", hidden: true });
  const nearest = (px) => {
    if (!n) return -1;
    const v = x0 + ((px - M.left) / pw) * (x1 - x0);
    let lo = 0, hi = n - 1;
    while (hi - lo > 1) { const mid = (lo + hi) >> 1; if (xs[mid] < v) lo = mid; else hi = mid; }
    return Math.abs(xs[lo] - v) <= Math.abs(xs[hi] - v) ? lo : hi;
  };
  const show = (i) => {
    if (i < 0) return;
    guide.setAttribute("x1", X(xs[i])); guide.setAttribute("x2", X(xs[i]));
    guide.setAttribute("visibility", "visible");
    clear(tip).appendChild(h("div", { class: "t" }, o.title ? o.title(i) : xf(xs[i])));
    for (const l of o.layers) {
      if (l.tooltip === false) continue;
      if (l.type === "bars") {
        for (const sr of l.series) if (sr.values[i]) tip.appendChild(h("div", null, h("span", { class: "sw", style: { background: sr.color } }), `${sr.name}: ${yf(sr.values[i], true)}`));
      } else if (l.type === "band") {
        if (l.lo[i] !== null && l.lo[i] !== undefined) tip.appendChild(h("div", null, h("span", { class: "sw", style: { background: l.color, opacity: 0.3 } }), `${l.name}: ${yf(l.lo[i], true)} – ${yf(l.hi[i], true)}`));
      } else if (l.values[i] !== null && l.values[i] !== undefined) {
        tip.appendChild(h("div", null, h("span", { class: "sw", style: { background: l.color } }), `${l.name}: ${yf(l.values[i], true)}`));
      }
    }
    if (o.onPick) tip.appendChild(h("div", { class: "muted" }, o.pickHint || "click to open"));
    tip.hidden = false;
    const left = X(xs[i]);
    tip.style.left = `${left + 12 + 220 > width ? Math.max(0, left - 232) : left + 12}px`;
    tip.style.top = `${M.top + 4}px`;
  };
  const hide = () => { guide.setAttribute("visibility", "hidden"); tip.hidden = true; };
  const overlay = s("rect", { x: M.left, y: M.top, width: pw, height: ph, fill: "transparent", class: o.onPick ? "pick" : null });
  overlay.addEventListener("mousemove", (e) => show(nearest(e.clientX - svg.getBoundingClientRect().left)));
  overlay.addEventListener("mouseleave", hide);
  if (o.onPick) overlay.addEventListener("click", (e) => { const i = nearest(e.clientX - svg.getBoundingClientRect().left); if (i >= 0) o.onPick(i); });
  svg.appendChild(overlay);

  // Points above the overlay, so they can be clicked and focused one by one.
  for (const l of o.layers) {
    if (l.type !== "line" || !l.points) continue;
    const g = s("g");
    const r = n > 200 ? 2.5 : 4;
    for (let i = 0; i < n; i++) {
      if (l.values[i] === null || l.values[i] === undefined) continue;
      const pt = s("circle", { class: "pt", cx: X(xs[i]), cy: Y(l.values[i]), r, fill: l.color, tabindex: o.onPick ? 0 : null, ...(o.pointAttrs ? o.pointAttrs(i, l) : {}) });
      pt.addEventListener("mouseenter", () => show(i));
      pt.addEventListener("focus", () => show(i));
      pt.addEventListener("blur", hide);
      if (o.onPick) {
        pt.addEventListener("click", () => o.onPick(i));
        pt.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") { e.preventDefault(); o.onPick(i); } });
      }
      g.appendChild(pt);
    }
    svg.appendChild(g);
  }
  holder.append(svg, tip);
}

/** Runs of consecutive indexes where `ok(i)` holds. */
function segments(n, ok) {
  const out = [];
  let cur = [];
  for (let i = 0; i < n; i++) {
    if (ok(i)) cur.push(i);
    else if (cur.length) { out.push(cur); cur = []; }
  }
  if (cur.length) out.push(cur);
  return out;
}

/** Time ticks at round intervals (minutes, hours, days) between x0 and x1 (microseconds). */
export function timeTicks(x0, x1, want) {
  const spanS = (x1 - x0) / 1e6;
  const steps = [1, 5, 10, 15, 30, 60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];
  const stepS = steps.find((st) => spanS / st <= want) || 2592000;
  // Local wall time is UTC minus the offset: align ticks to local hours and midnights.
  const offUs = new Date(x0 / 1000).getTimezoneOffset() * 60e6;
  const stepUs = stepS * 1e6;
  const out = [];
  let t = Math.ceil((x0 - offUs) / stepUs) * stepUs + offUs;
  for (; t <= x1; t += stepUs) out.push(t);
  return out;
}
