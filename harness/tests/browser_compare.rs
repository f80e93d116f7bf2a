//! The comparison page and the `serve` index in headless Chromium: a real (tiny) comparison
//! is made, `compare.html` and the index `quorate serve` returns are loaded with no console
//! errors, screenshotted, and must list the configurations; `serve` refuses paths out of the
//! store.
//!
//! Needs `target/<profile>/quorate-node` and Chromium (see checker/tests/common/browser.rs).

#[path = "../../checker/tests/common/browser.rs"]
mod browser;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

fn quorate() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_quorate"))
}

/// Where screenshots go, to be looked at after a run.
fn shots() -> PathBuf {
    let d = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-compare");
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// A `quorate serve` child, stopped (by its own pid) when dropped.
struct Serve(Child);

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over HTTP/1.0 (no chunking): the status code and the body.
fn get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

fn make_comparison(results: &Path) -> PathBuf {
    let node = quorate().parent().unwrap().join("quorate-node");
    assert!(
        node.is_file(),
        "{} is missing: cargo build -p quorate-node",
        node.display()
    );
    let m = results.join("m.toml");
    std::fs::write(
        &m,
        "time-limit = 2\nquiet = 1\n[abd-calm]\npreset = \"abd\"\nnemesis = \"none\"\nexpect = \"valid\"\n\
         [weak-calm]\npreset = \"weak\"\nnemesis = \"none\"\n",
    )
    .unwrap();
    let o = Command::new(quorate())
        .args(["compare", "--matrix"])
        .arg(&m)
        .arg("--results")
        .arg(results)
        .env("QUORATE_NODE_BIN", node)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let out = String::from_utf8_lossy(&o.stdout);
    PathBuf::from(out.lines().last().unwrap().trim())
}

#[test]
fn compare_page_and_serve_index_render_and_list_the_configurations() {
    let Some(chrome) = browser::chromium() else {
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let dir = make_comparison(t.path());

    let png = shots().join("compare.png");
    let page = browser::render(chrome, &dir.join("compare.html"), 1400, 1000, Some(&png)).unwrap();
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    for name in ["abd-calm", "weak-calm"] {
        assert!(
            page.dom.contains(&format!("data-name=\"{name}\"")),
            "{name} not listed in compare.html"
        );
    }
    assert!(page.dom.contains("<polyline"), "no staleness curve drawn");

    let mut child = Command::new(quorate())
        .args(["serve", "--port", "0", "--results"])
        .arg(t.path())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let serve = Serve(child);
    let mut url = String::new();
    BufReader::new(stdout).read_line(&mut url).unwrap();
    let addr = url
        .trim()
        .strip_prefix("http://")
        .and_then(|u| u.strip_suffix('/'))
        .unwrap_or_else(|| panic!("serve printed {url:?}, expected http://ADDR/"))
        .to_string();
    assert!(
        addr.starts_with("127.0.0.1:"),
        "loopback by default: {addr}"
    );

    let (code, index) = get(&addr, "/");
    assert_eq!(code, 200);
    let saved = t.path().join("index.html");
    std::fs::write(&saved, &index).unwrap();
    let png = shots().join("serve-index.png");
    let page = browser::render(chrome, &saved, 1400, 800, Some(&png)).unwrap();
    assert!(page.errors.is_empty(), "console errors: {:?}", page.errors);
    // The comparison (its configurations) and both runs, with links that work.
    assert!(page.dom.contains("abd-calm, weak-calm"), "{}", page.dom);
    assert!(page.dom.contains(">abd-calm<") && page.dom.contains(">weak-calm<"));
    let rel = dir.strip_prefix(t.path()).unwrap().display().to_string();
    let (code, html) = get(&addr, &format!("/files/{rel}/compare.html"));
    assert_eq!(code, 200);
    assert!(html.contains("data-name=\"abd-calm\""));
    // Read-only and inside the store.
    for bad in [
        "/files/../m.toml",
        "/files/%2e%2e/%2e%2e/etc/passwd",
        "/files/compare/..%2F..%2Fetc",
    ] {
        let (code, _) = get(&addr, bad);
        assert!(code == 400 || code == 404, "{bad}: {code}");
    }
    let (code, _) = get(&addr, "/files/m.toml");
    assert_eq!(code, 200, "a file in the store is served");
    drop(serve);
}
