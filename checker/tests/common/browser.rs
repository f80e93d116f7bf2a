//! Headless Chromium for the tests that render our HTML pages (timeline, compare, the `serve`
//! index): load a page, let its script run, and hand back the DOM it built, what it logged as
//! an error, and optionally a screenshot. Included by path from other crates' tests:
//! `#[path = "../../checker/tests/common/browser.rs"] mod browser;`.
//!
//! Chromium's `--enable-logging=stderr` prints every console message at the same level, so an
//! error cannot be told from a log line there. The page is therefore loaded from a copy with a
//! first `<script>` that prefixes `console.error`, uncaught exceptions and unhandled
//! rejections with [`ERROR_MARK`]; the page itself is not changed on disk.

#![allow(dead_code)] // each test binary uses part of it

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// What a console error line carries, so it can be found among Chromium's log lines.
pub const ERROR_MARK: &str = "QUORATE-CONSOLE-ERROR";

const HOOK: &str = r#"<script>(function () {
  const mark = "QUORATE-CONSOLE-ERROR";
  const err = console.error.bind(console);
  console.error = function (...a) { console.log(mark + " console.error: " + a.join(" ")); err(...a); };
  window.addEventListener("error", e => console.log(mark + " uncaught: " + e.message + " at " + e.filename + ":" + e.lineno));
  window.addEventListener("unhandledrejection", e => console.log(mark + " unhandled rejection: " + e.reason));
})();</script>"#;

/// A page as the browser left it.
#[derive(Debug)]
pub struct Rendered {
    /// The DOM after the page's scripts ran (`--dump-dom`).
    pub dom: String,
    /// Console errors, uncaught exceptions and unhandled rejections, one per line seen.
    pub errors: Vec<String>,
    /// Every console line (errors included), for failure messages.
    pub console: Vec<String>,
}

/// The first of the usual Chromium names that runs. `None` only when none is installed and
/// `QUORATE_SKIP_BROWSER=1` says to do without; otherwise a missing browser fails the test
/// with how to install it (CI installs it: `scripts/install-deps.sh`) — never a silent pass.
pub fn chromium() -> Option<&'static str> {
    let candidates = ["chromium", "chromium-browser", "google-chrome", "chrome"];
    let found = candidates.iter().copied().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match found {
        Some(b) => Some(b),
        None if std::env::var("QUORATE_SKIP_BROWSER").as_deref() == Ok("1") => {
            eprintln!("none of {candidates:?} installed; QUORATE_SKIP_BROWSER=1: skipping");
            None
        }
        None => panic!(
            "none of {candidates:?} is installed: install it (`scripts/install-deps.sh` does, as \
             root) or set QUORATE_SKIP_BROWSER=1 to skip this check"
        ),
    }
}

/// Load `page` (a file) headless at `width`×`height`, give its timers up to 5 s of virtual
/// time, and return what it built. With `screenshot`, a PNG of the first view is written there.
pub fn render(
    browser: &str,
    page: &Path,
    width: u32,
    height: u32,
    screenshot: Option<&Path>,
) -> Result<Rendered> {
    let html = std::fs::read_to_string(page)
        .with_context(|| format!("reading the page {}", page.display()))?;
    let dir = tempfile::tempdir()?;
    // Beside the original, so relative links (plots, other pages) still resolve.
    let copy: PathBuf = page.with_file_name(format!(
        ".browser-test-{}-{}",
        std::process::id(),
        page.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("page.html")
    ));
    std::fs::write(&copy, with_hook(&html)).context("writing the instrumented copy")?;
    let mut cmd = Command::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        // No network here: without these Chromium keeps dialling out.
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--enable-logging=stderr",
        "--v=0",
        "--virtual-time-budget=5000",
        "--dump-dom",
    ])
    .arg(format!("--window-size={width},{height}"))
    .arg(format!(
        "--user-data-dir={}",
        dir.path().join("profile").display()
    ));
    if let Some(png) = screenshot {
        cmd.arg(format!("--screenshot={}", png.display()));
    }
    let out = cmd.arg(format!("file://{}", copy.display())).output();
    let _ = std::fs::remove_file(&copy);
    let out = out.with_context(|| format!("running {browser}"))?;
    if !out.status.success() {
        bail!(
            "{browser} exited with {} on {}: {}",
            out.status,
            page.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    let console: Vec<String> = stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(str::to_string)
        .collect();
    // The hook reports uncaught exceptions too; Chromium's own "Uncaught" line counts only
    // when the hook never ran (a page that broke before its first script).
    let mut errors: Vec<String> = console
        .iter()
        .filter(|l| l.contains(ERROR_MARK))
        .cloned()
        .collect();
    if errors.is_empty() {
        errors = console
            .iter()
            .filter(|l| l.contains("\"Uncaught "))
            .cloned()
            .collect();
    }
    if let Some(png) = screenshot {
        if !png.is_file() {
            bail!("{browser} wrote no screenshot to {}", png.display());
        }
    }
    Ok(Rendered {
        dom: String::from_utf8_lossy(&out.stdout).into_owned(),
        errors,
        console,
    })
}

/// `html` with [`HOOK`] as the first thing in its `<head>` (or at the very start).
fn with_hook(html: &str) -> String {
    match html.find("<head>") {
        Some(i) => format!("{}{HOOK}{}", &html[..i + 6], &html[i + 6..]),
        None => format!("{HOOK}{html}"),
    }
}
