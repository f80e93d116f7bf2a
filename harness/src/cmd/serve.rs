//! `quorate serve`: browse the results store — an index of runs and comparisons, newest
//! first, and the store's files, read-only.
//!
//! The index is built from the store as it is on disk at each request (runs that finish while
//! the server runs appear on reload). Nothing here writes: the only routes are reads, and a
//! request path is taken apart into plain names (no `..`, no `.`, no separators) and, once
//! symlinks are resolved (`latest` is one), must still lie inside the store.

use anyhow::Context;
use axum::extract::{Path as UrlPath, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use clap::Args;
use quorate_checker::report::escape as esc;
use serde_json::Value;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Root of the results store.
    #[arg(long, default_value = "results")]
    pub results: PathBuf,
    /// Port to listen on (0: any free port; the URL is printed).
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on; loopback by default, since the store may hold anything.
    #[arg(long, default_value = "127.0.0.1")]
    pub listen: IpAddr,
}

pub fn main(args: ServeArgs) -> u8 {
    match serve(args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("quorate serve: error: {e:#}");
            3
        }
    }
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let root = args.results.canonicalize().with_context(|| {
        format!(
            "--results {}: expected a results folder",
            args.results.display()
        )
    })?;
    anyhow::ensure!(
        root.is_dir(),
        "--results {}: expected a folder",
        args.results.display()
    );
    let rt = tokio::runtime::Runtime::new().context("start the tokio runtime")?;
    rt.block_on(async move {
        let addr = SocketAddr::new(args.listen, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("listen on {addr}"))?;
        let bound = listener.local_addr()?;
        eprintln!(
            "quorate serve: {} (read-only), Ctrl-C to stop",
            root.display()
        );
        println!("http://{bound}/");
        let app = router(Arc::new(root));
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await
            .context("serve")
    })
}

/// The routes: `/` the index, `/files/…` the store.
pub fn router(root: Arc<PathBuf>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/files", get(files_root))
        .route("/files/", get(files_root))
        .route("/files/{*path}", get(files))
        .with_state(root)
}

/// One entry of the index.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// `run` or `comparison`.
    pub kind: &'static str,
    pub name: String,
    /// The folder's `yyyymmddThhmmssZ` name.
    pub time: String,
    pub configuration: String,
    pub verdict: String,
    pub seed: String,
    /// The folder, relative to the store, with `/` separators.
    pub rel: String,
    /// The page to open first (`timeline.html`, `compare.html`), when it exists.
    pub page: Option<String>,
}

fn read_json(p: &Path) -> Option<Value> {
    serde_json::from_slice(&std::fs::read(p).ok()?).ok()
}

fn subdirs(p: &Path) -> Vec<(String, PathBuf)> {
    let mut v: Vec<(String, PathBuf)> = std::fs::read_dir(p)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .map(|e| (e.file_name().to_string_lossy().to_string(), e.path()))
        .filter(|(n, _)| !n.starts_with('.'))
        .collect();
    v.sort();
    v
}

fn run_entry(root: &Path, dir: &Path, time: &str) -> Option<Entry> {
    let test = read_json(&dir.join("test.json"))?;
    let a = &test["args"];
    let mut conf = format!(
        "{} nodes, {}, nemesis {}, {} s",
        a["nodes"],
        test["node_args"]
            .as_array()
            .map(|v| v
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" "))
            .unwrap_or_default(),
        a["nemesis"].as_str().unwrap_or("?"),
        a["time_limit"]
    );
    if let Some(w) = a["workload"].as_str() {
        conf.push_str(&format!(", {w}"));
    }
    let verdict = match read_json(&dir.join("results.json")) {
        None => "no verdict yet (running, or stopped before checking)".to_string(),
        Some(r) if r.get("error").is_some() => "error".into(),
        Some(r) if r["interrupted"] == Value::Bool(true) => "interrupted".into(),
        Some(r) => match &r["valid"] {
            Value::Bool(true) => "valid".into(),
            Value::Bool(false) => "INVALID".into(),
            _ => "unknown".into(),
        },
    };
    let rel = rel_of(root, dir)?;
    Some(Entry {
        kind: "run",
        name: test["name"].as_str().unwrap_or("?").to_string(),
        time: time.to_string(),
        configuration: conf,
        verdict,
        seed: test["seed"].to_string(),
        page: dir
            .join("timeline.html")
            .exists()
            .then(|| format!("{rel}/timeline.html")),
        rel,
    })
}

fn compare_entry(root: &Path, dir: &Path, time: &str) -> Option<Entry> {
    let c = read_json(&dir.join("compare.json"))?;
    let rows = c["rows"].as_array().cloned().unwrap_or_default();
    let names: Vec<&str> = rows.iter().filter_map(|r| r["name"].as_str()).collect();
    let broken = c["broken"].as_array().map(Vec::len).unwrap_or(0);
    let with_expect = rows
        .iter()
        .any(|r| r["expect"].as_array().is_some_and(|e| !e.is_empty()));
    let verdict = if !c["interrupted"].is_null() {
        "interrupted".to_string()
    } else if broken > 0 {
        format!("{broken} expectation(s) broken")
    } else if with_expect {
        "every expectation held".into()
    } else {
        "no expectations".into()
    };
    let seeds = c["seeds"]
        .as_array()
        .map(|s| {
            s.iter()
                .map(Value::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    let rel = rel_of(root, dir)?;
    Some(Entry {
        kind: "comparison",
        name: "compare".into(),
        time: time.to_string(),
        configuration: names.join(", "),
        verdict,
        seed: seeds,
        page: Some(format!("{rel}/compare.html")),
        rel,
    })
}

fn rel_of(root: &Path, dir: &Path) -> Option<String> {
    let rel = dir.strip_prefix(root).ok()?;
    Some(
        rel.components()
            .map(|c| c.as_os_str().to_string_lossy().to_string())
            .collect::<Vec<_>>()
            .join("/"),
    )
}

/// Every run and comparison in the store, newest first: `<root>/<name>/<time>/` runs,
/// `<root>/compare/<time>/` comparisons and the runs inside them.
pub fn entries(root: &Path) -> Vec<Entry> {
    let mut out = Vec::new();
    for (name, dir) in subdirs(root) {
        for (time, d) in subdirs(&dir) {
            if name == "compare" {
                out.extend(compare_entry(root, &d, &time));
                for (_, cfg) in subdirs(&d) {
                    for (t, run) in subdirs(&cfg) {
                        out.extend(run_entry(root, &run, &t));
                    }
                }
            } else {
                out.extend(run_entry(root, &d, &time));
            }
        }
    }
    out.sort_by(|a, b| b.time.cmp(&a.time).then(a.rel.cmp(&b.rel)));
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;margin:24px;color:#222}
table{border-collapse:collapse;font-size:13px}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}
th{background:#f0f0f0}.INVALID,.error{color:#b42318;font-weight:bold}.valid{color:#1a7f37}";

async fn index(State(root): State<Arc<PathBuf>>) -> Html<String> {
    let list = tokio::task::spawn_blocking(move || entries(&root))
        .await
        .unwrap_or_default();
    let mut s = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>quorate results</title><style>{STYLE}</style></head><body>\n<h1>quorate results</h1>\n<p>{} runs and comparisons, newest first. <a href=\"/files/\">All files</a></p>\n",
        list.len()
    );
    s.push_str("<table id=\"runs\"><thead><tr><th>kind</th><th>name</th><th>time (UTC)</th><th>configuration</th><th>verdict</th><th>seed</th><th>files</th></tr></thead><tbody>\n");
    for e in &list {
        let name = match &e.page {
            Some(p) => format!("<a href=\"/files/{}\">{}</a>", esc(p), esc(&e.name)),
            None => esc(&e.name),
        };
        let class = e.verdict.split_whitespace().next().unwrap_or("");
        s.push_str(&format!(
            "<tr class=\"{}\"><td>{}</td><td>{name}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td><td>{}</td><td><a href=\"/files/{}/\">folder</a></td></tr>\n",
            e.kind,
            e.kind,
            esc(&e.time),
            esc(&e.configuration),
            esc(class),
            esc(&e.verdict),
            esc(&e.seed),
            esc(&e.rel)
        ));
    }
    s.push_str("</tbody></table></body></html>\n");
    Html(s)
}

/// The request path as a file inside the store, or why not.
pub fn resolve(root: &Path, path: &str) -> Result<PathBuf, StatusCode> {
    let mut p = root.to_path_buf();
    for part in path.split('/').filter(|s| !s.is_empty()) {
        if part == "." || part == ".." || part.contains('\\') || part.contains('\0') {
            return Err(StatusCode::BAD_REQUEST);
        }
        p.push(part);
    }
    let real = p.canonicalize().map_err(|_| StatusCode::NOT_FOUND)?;
    if !real.starts_with(root) {
        return Err(StatusCode::FORBIDDEN);
    }
    Ok(real)
}

fn content_type(p: &Path) -> &'static str {
    match p.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "json" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "xml" => "application/xml",
        "jsonl" | "log" | "md" | "txt" | "edn" | "toml" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

async fn files_root(State(root): State<Arc<PathBuf>>) -> Response {
    serve_path(root, String::new()).await
}

async fn files(State(root): State<Arc<PathBuf>>, UrlPath(path): UrlPath<String>) -> Response {
    serve_path(root, path).await
}

async fn serve_path(root: Arc<PathBuf>, path: String) -> Response {
    let found = match resolve(&root, &path) {
        Ok(p) => p,
        Err(code) => return (code, format!("{code}: /files/{path}\n")).into_response(),
    };
    if found.is_dir() {
        let base = path.trim_end_matches('/').to_string();
        let mut s = format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>/{0}</title><style>{STYLE}</style></head><body><h1>/{0}</h1><p><a href=\"/\">index</a></p><ul>",
            esc(&base)
        );
        let mut names: Vec<(String, bool)> = std::fs::read_dir(&found)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| {
                (
                    e.file_name().to_string_lossy().to_string(),
                    e.path().is_dir(),
                )
            })
            .filter(|(n, _)| !n.starts_with('.'))
            .collect();
        names.sort();
        for (n, dir) in names {
            let href = if base.is_empty() {
                n.clone()
            } else {
                format!("{base}/{n}")
            };
            let slash = if dir { "/" } else { "" };
            s.push_str(&format!(
                "<li><a href=\"/files/{}{slash}\">{}{slash}</a></li>",
                esc(&href),
                esc(&n)
            ));
        }
        s.push_str("</ul></body></html>");
        return Html(s).into_response();
    }
    match tokio::fs::read(&found).await {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, content_type(&found)),
                (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        Err(_) => (StatusCode::NOT_FOUND, "not found\n").into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_store() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        std::fs::create_dir_all(root.join("a")).unwrap();
        std::fs::write(root.join("a/x.json"), "{}").unwrap();
        std::os::unix::fs::symlink("/etc", root.join("out")).unwrap();
        assert_eq!(resolve(&root, "a/x.json").unwrap(), root.join("a/x.json"));
        assert_eq!(
            resolve(&root, "a/../../etc/passwd"),
            Err(StatusCode::BAD_REQUEST)
        );
        assert_eq!(resolve(&root, "./a"), Err(StatusCode::BAD_REQUEST));
        assert_eq!(resolve(&root, "out/passwd"), Err(StatusCode::FORBIDDEN));
        assert_eq!(resolve(&root, "nope"), Err(StatusCode::NOT_FOUND));
    }

    #[test]
    fn index_lists_runs_and_comparisons_newest_first() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().canonicalize().unwrap();
        let run = |rel: &str, valid: Value| {
            let d = root.join(rel);
            std::fs::create_dir_all(&d).unwrap();
            let test = serde_json::json!({"name": "node-weak-register", "seed": 7, "node_args": ["--preset", "weak"],
                "args": {"nodes": 5, "nemesis": "partition", "time_limit": 5.0, "workload": "register"}});
            std::fs::write(d.join("test.json"), test.to_string()).unwrap();
            std::fs::write(
                d.join("results.json"),
                serde_json::json!({"valid": valid}).to_string(),
            )
            .unwrap();
        };
        run("node-weak-register/20260101T000000Z", Value::Bool(false));
        run(
            "compare/20260102T000000Z/weak/20260102T000001Z",
            Value::Bool(true),
        );
        std::fs::write(
            root.join("compare/20260102T000000Z/compare.json"),
            r#"{"seeds": [1], "interrupted": null, "broken": [], "rows": [{"name": "weak", "expect": []}]}"#,
        )
        .unwrap();
        let e = entries(&root);
        let kinds: Vec<(&str, &str, &str)> = e
            .iter()
            .map(|x| (x.kind, x.time.as_str(), x.verdict.as_str()))
            .collect();
        assert_eq!(
            kinds,
            [
                ("run", "20260102T000001Z", "valid"),
                ("comparison", "20260102T000000Z", "no expectations"),
                ("run", "20260101T000000Z", "INVALID"),
            ]
        );
        assert!(e[2].configuration.contains("--preset weak"));
        assert_eq!(e[2].seed, "7");
    }
}
