// The app: a router over path-based URLs (every page has a stable, shareable URL), the top bar,
// and the page lifecycle. A page is `render(ctx)` drawing into `ctx.root`; a navigation aborts
// the previous page's requests (ctx.signal) so a slow answer never draws over a newer page.

import { h, replace } from "./dom.js";
import { ApiError, forgetKey, storedKey } from "./api.js";
import * as home from "./pages/home.js";
import * as project from "./pages/project.js";
import * as run from "./pages/run.js";
import * as step from "./pages/step.js";
import * as compare from "./pages/compare.js";
import * as trace from "./pages/trace.js";
import * as search from "./pages/search.js";

const ROUTES = [
  [/^\/(?:ui\/?)?$/, home],
  [/^\/ui\/projects\/?$/, home],
  [/^\/ui\/projects\/([^/]+)\/?$/, project, ["name"]],
  [/^\/ui\/runs\/([^/]+)\/?$/, run, ["id"]],
  [/^\/ui\/runs\/([^/]+)\/steps\/(\d+)\/?$/, step, ["id", "step"]],
  [/^\/ui\/compare\/?$/, compare],
  [/^\/ui\/traces\/([^/]+)\/?$/, trace, ["id"]],
  [/^\/ui\/search\/?$/, search],
];

const main = document.getElementById("main");
const crumbsEl = document.getElementById("crumbs");
let current = null;

/**
 * The page and its decoded path parameters; null when no route matches, or when a parameter is
 * not valid percent-encoding (`/ui/traces/%E0%A4%A`): such a path names no page.
 */
function match(path) {
  for (const [re, page, names = []] of ROUTES) {
    const m = re.exec(path);
    if (m) {
      const params = {};
      try {
        names.forEach((n, i) => { params[n] = decodeURIComponent(m[i + 1]); });
      } catch (e) {
        if (e instanceof URIError) return null;
        throw e;
      }
      return { page, params };
    }
  }
  return null;
}

/** Sets the breadcrumbs: [[label, href], ..., [label]]. */
function setCrumbs(items) {
  const out = [];
  items.forEach(([label, href], i) => {
    if (i) out.push(h("span", { class: "sep" }, "/"));
    out.push(href ? h("a", { href }, label) : h("span", null, label));
  });
  replace(crumbsEl, out);
}

async function render() {
  if (current) current.abort();
  const controller = new AbortController();
  current = controller;
  const path = location.pathname;
  const query = new URLSearchParams(location.search);
  const found = match(path);
  const root = h("div", { class: "page" });
  replace(main, root);
  window.__kestrelPage = { path, ready: false };
  const ctx = {
    root,
    params: found?.params || {},
    query,
    signal: controller.signal,
    crumbs: setCrumbs,
    title: (t) => { document.title = t ? `${t} · Kestrel` : "Kestrel"; },
    navigate,
  };
  const topInput = document.querySelector("#topsearch input");
  if (topInput && path !== "/ui/search") topInput.value = "";
  try {
    if (!found) {
      ctx.crumbs([["Projects", "/ui/"], ["Not found"]]);
      replace(root, h("div", { class: "notice bad" }, `No page at ${path}. `, h("a", { href: "/ui/" }, "Go to the projects")));
    } else {
      root.appendChild(h("p", { class: "loading" }, "Loading…"));
      await found.page.render(ctx);
    }
  } catch (e) {
    if (e?.name === "AbortError" || controller.signal.aborted) return;
    console.error(e);
    const msg = e instanceof ApiError ? e.message : `Something went wrong drawing this page: ${e?.message || e}`;
    replace(root, h("div", { class: "notice bad", id: "page-error" }, msg));
  }
  if (!controller.signal.aborted) window.__kestrelPage.ready = true;
}

/** Goes to a URL of the app without reloading. */
export function navigate(href, { replace: rep = false } = {}) {
  if (rep) history.replaceState(null, "", href);
  else history.pushState(null, "", href);
  window.scrollTo(0, 0);
  render();
}

function isAppPath(p) {
  return p === "/" || p === "/ui" || p.startsWith("/ui/") && !p.startsWith("/ui/static/");
}

document.addEventListener("click", (e) => {
  if (e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const a = e.target.closest?.("a[href]");
  if (!a || a.target || a.hasAttribute("download")) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || !isAppPath(u.pathname)) return;
  e.preventDefault();
  if (u.pathname === location.pathname && u.search === location.search && u.hash) { location.hash = u.hash; return; }
  navigate(u.pathname + u.search + u.hash);
});

window.addEventListener("popstate", render);

document.getElementById("topsearch").addEventListener("submit", (e) => {
  e.preventDefault();
  const q = e.target.elements.q.value.trim();
  navigate("/ui/search?" + new URLSearchParams({ q }).toString());
});

const keyBtn = document.getElementById("keybtn");
function showKeyBtn() { keyBtn.hidden = !storedKey(); }
keyBtn.addEventListener("click", () => { forgetKey(); render(); });
document.addEventListener("kestrel:key", showKeyBtn);
showKeyBtn();

render();
