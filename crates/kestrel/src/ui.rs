//! The web UI: a small single-page app of hand-written HTML, CSS and ES modules (no bundler, no
//! npm), embedded in the binary with `include_bytes!` and served from memory.
//!
//! Routes (mounted outside the API-key layer: these files hold no data, the app asks for the key
//! and sends it to `/api/v1` itself):
//! - `GET /`, `GET /ui` and `GET /ui/<any page path>`: the app shell (`index.html`). Every page of
//!   the app has a stable URL (`/ui/projects/NAME`, `/ui/runs/ID/steps/N`, `/ui/traces/ID`,
//!   `/ui/search?q=...`); the server answers the same shell for all of them and the app's router
//!   draws the page, so a shared link or a reload opens the same page.
//! - `GET /ui/static/<version>/<file>`: the app's files. `<version>` is a hash of all embedded
//!   files, so a new binary changes every URL: files under the current version are cached for a
//!   year (`immutable`), the shell is never cached (`no-cache`), and a page loaded before an
//!   upgrade still gets files (under an old version, answered with `no-cache`).
//!
//! Invariants: a file is served only from [`ASSETS`] (no file system access, so no path
//! traversal); an unknown file under `/ui/static/` is a JSON 404 like the API's; only GET and HEAD
//! are answered, anything else is a JSON 405. The shell carries a strict Content-Security-Policy
//! (scripts and styles from this origin only, no inline script), so text from traces can never
//! run as code even if a renderer slipped.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;

use crate::error::ApiError;

/// One embedded file: its path under `/ui/static/<version>/`, content type and bytes.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $ct:expr) => {
        Asset {
            path: $path,
            content_type: $ct,
            bytes: include_bytes!(concat!("../ui/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the app. A new file under `ui/` must be listed here to be served.
const ASSETS: &[Asset] = &[
    asset!("app.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/app.js", JS),
    asset!("js/api.js", JS),
    asset!("js/dom.js", JS),
    asset!("js/format.js", JS),
    asset!("js/chart.js", JS),
    asset!("js/json.js", JS),
    asset!("js/table.js", JS),
    asset!("js/pages/home.js", JS),
    asset!("js/pages/project.js", JS),
    asset!("js/pages/run.js", JS),
    asset!("js/pages/step.js", JS),
    asset!("js/pages/compare.js", JS),
    asset!("js/pages/trace.js", JS),
    asset!("js/pages/conversation.js", JS),
    asset!("js/pages/search.js", JS),
];

/// The shell; `{{V}}` is replaced by [`version`].
const INDEX_HTML: &str = include_str!("../ui/index.html");

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

/// A short hash of every embedded file: changes whenever any file changes.
fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let mut h = DefaultHasher::new();
        INDEX_HTML.hash(&mut h);
        for a in ASSETS {
            a.path.hash(&mut h);
            a.bytes.hash(&mut h);
        }
        format!("{:012x}", h.finish() & 0xffff_ffff_ffff)
    });
    &VERSION
}

fn shell_html() -> &'static str {
    static SHELL: LazyLock<String> = LazyLock::new(|| INDEX_HTML.replace("{{V}}", version()));
    &SHELL
}

/// The UI's routes. Merge them after the API's auth layer: they must answer without a key.
pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/", any(serve))
        .route("/ui", any(serve))
        .route("/ui/", any(serve))
        .route("/ui/{*rest}", any(serve))
}

async fn serve(method: Method, uri: Uri) -> Response {
    if method != Method::GET && method != Method::HEAD {
        return ApiError::MethodNotAllowed(format!(
            "{method} is not allowed on {}; the web UI answers GET only",
            uri.path()
        ))
        .into_response();
    }
    match uri.path().strip_prefix("/ui/static/") {
        Some(rest) => static_file(rest),
        None => shell(),
    }
}

fn shell() -> Response {
    let mut response = shell_html().into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

/// `rest` is `<version>/<file>`.
fn static_file(rest: &str) -> Response {
    let (ver, path) = rest.split_once('/').unwrap_or(("", rest));
    let Some(asset) = ASSETS.iter().find(|a| a.path == path) else {
        return ApiError::not_found(format!("no UI file {path:?}")).into_response();
    };
    let cache = if ver == version() {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, asset.content_type),
            (header::CACHE_CONTROL, cache),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        asset.bytes,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_is_referenced_once_and_the_shell_is_versioned() {
        let shell = shell_html();
        assert!(!shell.contains("{{V}}"));
        assert!(shell.contains(&format!("/ui/static/{}/js/app.js", version())));
        let mut paths: Vec<_> = ASSETS.iter().map(|a| a.path).collect();
        paths.sort_unstable();
        paths.dedup();
        assert_eq!(paths.len(), ASSETS.len());
    }

    #[test]
    fn js_modules_import_only_embedded_files() {
        // A module imported but not listed in ASSETS would 404 in the browser only.
        for a in ASSETS.iter().filter(|a| a.path.ends_with(".js")) {
            let text = std::str::from_utf8(a.bytes).unwrap();
            for line in text.lines().filter(|l| l.starts_with("import ")) {
                let spec = line.rsplit(['"', '\'']).nth(1).unwrap();
                let dir = a.path.rsplit_once('/').map_or("", |(d, _)| d);
                let mut parts: Vec<&str> = dir.split('/').filter(|p| !p.is_empty()).collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                assert!(
                    ASSETS.iter().any(|b| b.path == target),
                    "{} imports {spec} ({target}), which is not embedded",
                    a.path
                );
            }
        }
    }
}
