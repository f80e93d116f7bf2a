//! `timeline.html`: its structure and contents, on the bundled examples and on hostile and big
//! histories. When a headless Chromium is installed, the page is also rendered and its drawing
//! inspected; without one that test says so and checks the rest.

use anyhow::{Context, Result};
use quorate_checker::check::{check_events, check_file, CheckOptions};
use quorate_checker::history::{Event, EventType, Process};
use quorate_checker::import::Format;
use quorate_checker::report::timeline::{render, MAX_OPS_PER_KEY};
use serde_json::{json, Value};
use std::path::PathBuf;

#[path = "common/browser.rs"]
mod browser;

fn example(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/histories")
        .join(name)
}

/// The JSON embedded in a page.
fn embedded(html: &str) -> Result<Value> {
    let start = html
        .find(r#"<script type="application/json" id="data">"#)
        .context("the page embeds its data")?;
    let rest = &html[start..];
    let body = &rest[rest.find('>').unwrap() + 1..rest.find("</script>").unwrap()];
    Ok(serde_json::from_str(body)?)
}

fn assert_self_contained(html: &str) {
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.trim_end().ends_with("</html>"));
    for external in [
        "<link",
        "src=\"http",
        "src='http",
        "href=\"http",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "external asset {external:?}");
    }
    // Exactly the two script elements of the template: no value broke out of the data.
    assert_eq!(html.matches("<script").count(), 2);
    assert_eq!(html.matches("</script>").count(), 2);
}

#[test]
fn invalid_example_marks_the_counterexample() -> Result<()> {
    let report = check_file(&example("register-bad.jsonl"), &CheckOptions::default())?;
    let html = render(&report);
    assert_self_contained(&html);
    assert!(html.contains("<svg") && html.contains(r#"<select id="key">"#));
    let data = embedded(&html)?;
    assert_eq!(data["valid"], json!(false));
    assert_eq!(data["axis"], "time");
    assert_eq!(data["ops"], 5);
    // Invalid keys come first, so the page opens on the failure.
    let k1 = &data["keys"][0];
    assert_eq!(k1["key"], "k1");
    assert_eq!(k1["valid"], json!(false));
    let cx = &k1["counterexample"];
    let bad = cx["op"].as_u64().context("a counterexample op")?;
    let list = k1["list"].as_array().unwrap();
    let marked: Vec<_> = list.iter().filter(|o| o["bad"] == json!(true)).collect();
    assert_eq!(marked.len(), 1);
    assert_eq!(marked[0]["id"], bad);
    // Each op of the linearized prefix is numbered in order.
    for (i, id) in cx["prefix"].as_array().unwrap().iter().enumerate() {
        let op = list.iter().find(|o| &o["id"] == id).unwrap();
        assert_eq!(op["lin"], i + 1);
    }
    assert_eq!(data["keys"][1]["valid"], json!(true));
    // One partition window, from 100 ms to 300 ms.
    assert_eq!(data["faults"].as_array().unwrap().len(), 1);
    assert_eq!(data["faults"][0]["f"], "partition-start");
    assert_eq!(data["faults"][0]["s"], 100.0);
    assert_eq!(data["faults"][0]["e"], 300.0);
    Ok(())
}

fn ev(p: u64, kind: EventType, f: &str, key: &str, value: Value) -> Event {
    Event::new(Process::Client(p), kind, f, value).with_key(key)
}

#[test]
fn hostile_keys_and_values_stay_inside_the_data() -> Result<()> {
    let key = "</script><script>alert(1)</script>";
    let events = vec![
        ev(
            0,
            EventType::Invoke,
            "write",
            key,
            json!("<!-- </script> -->"),
        ),
        ev(0, EventType::Ok, "write", key, json!("<!-- </script> -->")),
    ];
    let report = check_events(
        "<b>&file</b>",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    let html = render(&report);
    assert_self_contained(&html);
    assert!(html.contains("<title>quorate timeline: &lt;b&gt;&amp;file&lt;/b&gt;</title>"));
    let data = embedded(&html)?;
    assert_eq!(data["keys"][0]["key"], key);
    assert_eq!(data["file"], "<b>&file</b>");
    // No times: the axis is line order.
    assert_eq!(data["axis"], "line");
    Ok(())
}

#[test]
fn big_histories_are_drawn_in_part_and_say_so() -> Result<()> {
    let n = MAX_OPS_PER_KEY * 3;
    let mut events = Vec::with_capacity(2 * n);
    for i in 0..n {
        events.push(ev(0, EventType::Invoke, "write", "big", json!(i)));
        events.push(ev(0, EventType::Ok, "write", "big", json!(i)));
    }
    let report = check_events(
        "big.jsonl",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    let html = render(&report);
    let data = embedded(&html)?;
    let k = &data["keys"][0];
    assert_eq!(k["ops"], n);
    assert_eq!(k["drawn"], MAX_OPS_PER_KEY);
    assert_eq!(k["list"].as_array().unwrap().len(), MAX_OPS_PER_KEY);
    assert!(html.contains("at most"), "the page explains the cut");
    assert!(html.len() < 400 * MAX_OPS_PER_KEY, "{} bytes", html.len());
    Ok(())
}

/// A tool a test needs (Chromium, Node). CI installs both (`.ci/run`); a machine without one
/// fails the test with a message, unless `QUORATE_SKIP_BROWSER=1` says to do without — never a
/// silent pass.
fn tool(candidates: &[&'static str]) -> Option<&'static str> {
    let found = candidates.iter().copied().find(|b| {
        std::process::Command::new(b)
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
            "none of {candidates:?} is installed: install it (`.ci/run` does: apt-get install \
             chromium nodejs) or set QUORATE_SKIP_BROWSER=1 to skip this check"
        ),
    }
}

/// Render the invalid example in headless Chromium and read back the drawn SVG: no console
/// error, and the bars, the bad op and the fault window are in the DOM.
#[test]
fn renders_in_headless_chromium() -> Result<()> {
    let Some(chromium) = browser::chromium() else {
        return Ok(());
    };
    let report = check_file(&example("register-bad.jsonl"), &CheckOptions::default())?;
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("timeline.html");
    std::fs::write(&page, render(&report))?;
    let shown = browser::render(chromium, &page, 1200, 800, None)?;
    assert!(
        shown.errors.is_empty(),
        "console errors: {:?}",
        shown.errors
    );
    let dom = &shown.dom;
    assert!(dom.contains("class=\"bar ok"), "bars drawn: {dom}");
    assert!(
        dom.contains(" bad\""),
        "the op that cannot be placed is marked"
    );
    assert!(dom.contains("class=\"fault\""), "the partition is shaded");
    Ok(())
}

/// The browser helper itself: a page that throws is reported, with its message.
#[test]
fn the_browser_helper_reports_a_throwing_page() -> Result<()> {
    let Some(chromium) = browser::chromium() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("bad.html");
    std::fs::write(
        &page,
        "<html><head></head><body><p id=p>x</p><script>console.log('fine'); \
         document.getElementById('p').dataset.w = 7; console.error('drawn wrong'); \
         notAFunction();</script></body></html>",
    )?;
    let shot = dir.path().join("bad.png");
    let shown = browser::render(chromium, &page, 400, 300, Some(&shot))?;
    assert!(shown.dom.contains("data-w=\"7\""), "{}", shown.dom);
    assert_eq!(shown.errors.len(), 2, "{:?}", shown.console);
    assert!(
        shown.errors[0].contains("drawn wrong"),
        "{:?}",
        shown.errors
    );
    assert!(
        shown.errors[1].contains("notAFunction"),
        "{:?}",
        shown.errors
    );
    assert!(std::fs::metadata(&shot)?.len() > 0);
    Ok(())
}

/// A stand-in for the browser: just the DOM the page's script uses, recording what it draws.
const DOM_STUB: &str = r#"
"use strict";
const made = [];
class Node {
  constructor(tag) { this.tag = tag; this.attrs = {}; this.children = []; this.style = {};
    this.textContent = ""; this.value = "0"; this.clientWidth = 1000; this.offsetWidth = 100; made.push(this); }
  setAttribute(a, v) { this.attrs[a] = String(v); }
  append(...c) { this.children.push(...c); }
  replaceChildren() { this.children = []; }
}
const byId = {};
const document = {
  getElementById(id) {
    if (id === "data") { const n = new Node("script"); n.textContent = DATA; return n; }
    return byId[id] || (byId[id] = new Node(id));
  },
  createElement(t) { return new Node(t); },
  createElementNS(ns, t) { return new Node(t); },
};
const innerWidth = 1200;
"#;

/// Run the page's script under Node with [`DOM_STUB`]: the script must run without an
/// exception and draw every drawn op as a bar.
#[test]
fn the_script_draws_every_op_under_node() -> Result<()> {
    let Some(node) = tool(&["node", "nodejs"]) else {
        return Ok(());
    };
    let report = check_file(&example("register-bad.jsonl"), &CheckOptions::default())?;
    let html = render(&report);
    let data = embedded(&html)?;
    let script_start = html.rfind("<script>").context("the drawing script")? + "<script>".len();
    let script = &html[script_start..html.rfind("</script>").unwrap()];
    let program = format!(
        "const DATA = {};\n{DOM_STUB}\n{script}\n\
         const bars = made.filter(n => n.tag === 'rect' && (n.attrs.class || '').startsWith('bar'));\n\
         const bad = bars.filter(n => n.attrs.class.includes(' bad'));\n\
         const faults = made.filter(n => n.attrs.class === 'fault');\n\
         console.log(JSON.stringify({{bars: bars.length, bad: bad.length, faults: faults.length,\n\
           explain: byId.explain.textContent}}));",
        serde_json::to_string(&data.to_string())?
    );
    let dir = tempfile::tempdir()?;
    let js = dir.path().join("page.js");
    std::fs::write(&js, program)?;
    let out = std::process::Command::new(node).arg(&js).output()?;
    assert!(
        out.status.success(),
        "the script failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let drawn: Value = serde_json::from_slice(&out.stdout)?;
    // The page opens on the invalid key k1: its 3 ops, one of them the op that cannot be placed.
    assert_eq!(
        drawn["bars"],
        data["keys"][0]["list"].as_array().unwrap().len()
    );
    assert_eq!(drawn["bad"], 1);
    assert_eq!(drawn["faults"], 1);
    assert!(drawn["explain"]
        .as_str()
        .unwrap()
        .starts_with("op 5 cannot be placed"));
    Ok(())
}
