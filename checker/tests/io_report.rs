//! The reports: `timeline.html` (its data on the bundled examples and on hostile and big
//! histories; rendered in headless Chromium, a simulated invalid run's page and a 100k-op one)
//! and the plots (`latency.svg`, `rate.svg`, `staleness.svg`, several staleness curves).

use anyhow::{Context, Result};
use quorate_checker::check::{check_events, check_file, CheckOptions};
use quorate_checker::history::{Event, EventType, Process};
use quorate_checker::import::Format;
use quorate_checker::report::plots::{latency_svg, rate_svg, staleness_svg};
use quorate_checker::report::timeline::{render, MAX_OPS_PER_KEY};
use quorate_checker::report::{write_all, RunInfo};
use serde_json::{json, Value};
use std::path::PathBuf;

#[path = "common/browser.rs"]
mod browser;
#[path = "common/weak_run.rs"]
mod weak_run;

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

/// The page's op as an object (the data holds arrays: id, process, f, input, output, outcome,
/// start, end, node, version, error).
fn op(a: &Value) -> Value {
    json!({"id": a[0], "p": a[1], "f": a[2], "in": a[3], "out": a[4], "o": a[5], "s": a[6],
           "e": a[7], "node": a[8]})
}

#[test]
fn invalid_example_lists_every_checks_anomalies() -> Result<()> {
    let report = check_file(&example("register-bad.jsonl"), &CheckOptions::default())?;
    let html = render(&report);
    assert_self_contained(&html);
    assert!(html.contains("<svg") && html.contains(r#"<select id="key">"#));
    let data = embedded(&html)?;
    assert_eq!(data["valid"], json!(false));
    assert_eq!(data["axis"], "time");
    assert_eq!(data["ops"], 5);
    // Every check's anomaly at the read (op 5) that returned 1 after write 2 completed: the
    // stale read first, then its cycle, the lost write, the linearizability counterexample.
    let checks: Vec<&str> = data["anomalies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["check"].as_str().unwrap())
        .collect();
    assert_eq!(
        checks,
        ["stale-reads", "stale-reads", "lost-writes", "linearizable"]
    );
    assert_eq!(data["anomalies_total"], 4);
    let first = &data["anomalies"][0];
    assert_eq!(
        (first["key"].clone(), first["at"].clone()),
        (json!("k1"), json!(5))
    );
    assert_eq!(first["ops"], json!([5, 3]));
    assert_eq!(first["x"], 220.0);
    let lin = &data["anomalies"][3];
    assert_eq!(lin["ops"], json!([5]));
    assert_eq!(lin["prefix"], json!([0, 3]));
    // The failing key comes first and is drawn in full; the page says what each op did.
    let k1 = &data["keys"][0];
    assert_eq!(
        (k1["key"].clone(), k1["failing"].clone()),
        (json!("k1"), json!(true))
    );
    let read = k1["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(op)
        .find(|o| o["id"] == 5)
        .context("op 5 drawn")?;
    assert_eq!(
        read,
        json!({"id": 5, "p": 2, "f": "read", "in": null, "out": 1, "o": "ok", "s": 220.0,
               "e": 260.0, "node": "n3"})
    );
    assert_eq!(data["keys"][1]["failing"], json!(false));
    // One partition window, from 100 ms to 300 ms.
    assert_eq!(data["faults"].as_array().unwrap().len(), 1);
    assert_eq!(data["faults"][0]["f"], "partition-start");
    assert_eq!(data["faults"][0]["s"], 100.0);
    assert_eq!(data["faults"][0]["e"], 300.0);
    // Each check's verdict and counts.
    let lines: Vec<String> = data["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}: {}",
                c["name"].as_str().unwrap(),
                c["line"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(lines[0], "linearizable: 1 of 2 keys invalid");
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("stale-reads: 1 stale of 2 reads")),
        "{lines:?}"
    );
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
        // A read of it, so the checks have something to judge and the file is valid.
        ev(1, EventType::Invoke, "read", key, Value::Null),
        ev(1, EventType::Ok, "read", key, json!("<!-- </script> -->")),
    ];
    let report = check_events(
        "<b>&file</b>",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    let html = render(&report);
    assert_self_contained(&html);
    assert!(html.contains("<title>&lt;b&gt;&amp;file&lt;/b&gt; — valid</title>"));
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
    assert!(html.len() < 200 * MAX_OPS_PER_KEY, "{} bytes", html.len());
    Ok(())
}

/// A 100k-op run: keys with anomalies drawn in full, the others sampled, and the page says so.
#[test]
fn a_100k_op_run_draws_failing_keys_in_full_and_samples_the_rest() -> Result<()> {
    let events = weak_run::events(3, 100_000, 200);
    let report = check_events(
        "big-run.jsonl",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    let html = render(&report);
    let data = embedded(&html)?;
    let keys = data["keys"].as_array().unwrap();
    let failing: Vec<&Value> = keys
        .iter()
        .filter(|k| k["failing"] == json!(true))
        .collect();
    assert_eq!(failing.len() as u64, data["keys_failing"].as_u64().unwrap());
    assert!(!failing.is_empty());
    for k in &failing {
        assert_eq!(k["drawn"], k["ops"], "failing key {} in full", k["key"]);
    }
    let (drawn, total) = (
        data["valid_keys_drawn"].as_u64().unwrap(),
        data["valid_keys_total"].as_u64().unwrap(),
    );
    assert!(
        0 < drawn && drawn < total,
        "{drawn} of {total} valid keys sampled"
    );
    assert_eq!(keys.len() as u64, failing.len() as u64 + drawn);
    assert!(html.contains("sampled evenly"), "the page says it sampled");
    // Every anomaly of the failing keys is marked, and the first in time opens the page.
    assert!(
        data["anomalies"].as_array().unwrap().len() as u64
            == data["anomalies_total"].as_u64().unwrap()
    );
    eprintln!("a 100k-op run's page: {} bytes", html.len());
    assert!(html.len() < 16_000_000, "{} bytes", html.len());
    Ok(())
}

#[test]
fn the_run_titles_the_page_from_test_json() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let history = weak_run::write(dir.path(), 5, 600, 200);
    let run = RunInfo::beside(&history);
    assert_eq!(
        run,
        RunInfo {
            name: "weak-sim".into(),
            configuration: "preset weak, workload register, nemesis partition, 3 nodes".into(),
            seed: Some(5),
        }
    );
    // Without test.json: the file's name.
    std::fs::remove_file(dir.path().join("test.json"))?;
    assert_eq!(RunInfo::beside(&history).name, "history.jsonl");
    assert_eq!(RunInfo::beside(&history).seed, None);
    Ok(())
}

/// The plots: several staleness curves on one plot, latency and rate with the fault window
/// shaded, and a note instead of an axis for a history without times.
#[test]
fn plots_draw_their_series_and_say_when_they_cannot() -> Result<()> {
    let svg = staleness_svg(&[
        ("weak".into(), vec![(0.0, 0.5), (1.0, 0.75), (100.0, 1.0)]),
        ("strict".into(), vec![(0.0, 1.0), (100.0, 1.0)]),
        ("nothing yet".into(), vec![]),
    ]);
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    for label in ["weak", "strict", "nothing yet", "P(consistent read)"] {
        assert!(svg.contains(label), "{label} in the staleness plot");
    }
    // A dot per point (the empty curve draws none).
    assert_eq!(svg.matches("<circle").count(), 5);
    let report = check_file(&example("register-bad.jsonl"), &CheckOptions::default())?;
    for svg in [latency_svg(&report), rate_svg(&report)] {
        assert!(
            svg.contains("fault window"),
            "the partition is shaded and named"
        );
    }
    assert!(latency_svg(&report).contains("read") && latency_svg(&report).contains("write"));
    assert!(rate_svg(&report).contains("write ok"));
    let events = vec![
        ev(0, EventType::Invoke, "write", "k", json!(1)),
        ev(0, EventType::Ok, "write", "k", json!(1)),
    ];
    let untimed = check_events(
        "untimed.jsonl",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    assert!(latency_svg(&untimed).contains("no latencies: this history has no times"));
    assert!(rate_svg(&untimed).contains("no rates"));
    Ok(())
}

/// The issue's browser test: a simulated invalid run's `timeline.html`, loaded in headless
/// Chromium, has no console error, lists the anomalies, is titled with the run, and opens on
/// the first anomaly with the failing op's bar at least 40 px wide (the page records the
/// drawn width on `<body>`), and a screenshot of that first view is taken.
#[test]
fn timeline_of_an_invalid_run_in_headless_chromium() -> Result<()> {
    let Some(chromium) = browser::chromium() else {
        return Ok(());
    };
    let dir = tempfile::tempdir()?;
    let history = weak_run::write(dir.path(), 11, 3000, 200);
    let report = check_file(&history, &CheckOptions::default())?;
    assert_eq!(report.valid, quorate_checker::verdict::Verdict::Invalid);
    let written = write_all(&report, &RunInfo::beside(&history), dir.path())?;
    assert_eq!(written.len(), 4);
    let page = dir.path().join("timeline.html");
    let data = embedded(&std::fs::read_to_string(&page)?)?;
    let first = &data["anomalies"][0];
    let total = data["anomalies_total"].as_u64().unwrap();
    assert!(total > 0);
    let shot = dir.path().join("timeline.png");
    let shown = browser::render(chromium, &page, 1400, 1000, Some(&shot))?;
    assert!(
        shown.errors.is_empty(),
        "console errors: {:?}",
        shown.errors
    );
    let dom = &shown.dom;
    let body = &dom[dom.find("<body").context("a body")?..];
    let body = &body[..body.find('>').unwrap()];
    assert!(!body.contains("data-errors"), "{body}");
    assert!(
        body.contains("data-ready=\"1\""),
        "the script ran to the end: {body}"
    );
    let attr = |name: &str| -> Option<String> {
        let at = body.find(&format!("{name}=\""))? + name.len() + 2;
        Some(body[at..at + body[at..].find('"')?].to_string())
    };
    assert_eq!(attr("data-failing-op"), Some(first["at"].to_string()));
    let width: f64 = attr("data-failing-width")
        .context("a failing width")?
        .parse()?;
    assert!(width >= 40.0, "the failing op's bar is {width} px wide");
    assert_eq!(attr("data-anomalies"), Some(total.to_string()));
    // Titled with the run; the anomalies listed; bars say what they did; final reads named.
    assert!(dom.contains("weak-sim — INVALID"), "title");
    assert!(dom.contains("preset weak, workload register, nemesis partition, 3 nodes · seed 11"));
    assert!(dom.contains(&format!("Anomalies ({total})")));
    let sentence = first["sentence"].as_str().unwrap();
    let clause = &sentence[..sentence.find(',').unwrap_or(sentence.len()).min(40)];
    assert!(dom.contains(clause), "the first anomaly listed: {clause}");
    assert!(dom.matches("class=\"anom").count() as u64 >= total.min(1000));
    assert!(
        dom.contains(">w ") && dom.contains(">r → "),
        "bars labelled w 17 / r → 12"
    );
    assert!(dom.contains(">final reads<"), "the final reads' row");
    assert!(!dom.contains("process 1000000000"));
    assert!(
        dom.contains("class=\"ov-anom\""),
        "anomalies marked on the strip"
    );
    assert!(dom.contains("class=\"fault\""), "the partition is shaded");
    assert!(std::fs::metadata(&shot)?.len() > 10_000, "a screenshot");
    Ok(())
}

/// A history without times (line order only, a cas op so the register checks are skipped),
/// first without anomalies, then with replicas that never converged (an anomaly at the
/// harness's observation, not at an op): each page loads without an error and draws every op.
#[test]
fn a_history_without_times_renders_in_headless_chromium() -> Result<()> {
    let Some(chromium) = browser::chromium() else {
        return Ok(());
    };
    let mut events = vec![
        ev(0, EventType::Invoke, "write", "k", json!(1)),
        ev(0, EventType::Ok, "write", "k", json!(1)),
        ev(1, EventType::Invoke, "cas", "k", json!([1, 2])),
        ev(1, EventType::Ok, "cas", "k", json!([1, 2])),
        ev(2, EventType::Invoke, "read", "k", Value::Null),
        ev(2, EventType::Ok, "read", "k", json!(2)),
    ];
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("timeline.html");
    for converged in [None, Some(false)] {
        if converged.is_some() {
            events.push(Event::new(
                Process::Harness,
                EventType::Info,
                "convergence",
                json!({"converged": false, "keys_differing": 1, "keys": ["k"]}),
            ));
        }
        let report = check_events(
            "untimed.jsonl",
            &events,
            Format::Jsonl,
            &CheckOptions::default(),
        )?;
        let html = render(&report);
        std::fs::write(&page, &html)?;
        let shown = browser::render(chromium, &page, 1000, 700, None)?;
        assert!(
            shown.errors.is_empty(),
            "console errors: {:?}",
            shown.errors
        );
        let dom = &shown.dom;
        assert!(
            dom.contains("data-ready=\"1\"") && dom.contains("data-bars=\"3\""),
            "{dom}"
        );
        assert!(dom.contains(">line 0<"));
        assert!(dom.contains(">cas 1→2<") && dom.contains(">r → 2<") && dom.contains(">w 1<"));
        if converged.is_none() {
            assert!(dom.contains("No anomalies"));
        } else {
            let data = embedded(&html)?;
            assert_eq!(data["anomalies"][0]["check"], "convergence");
            assert_eq!(data["anomalies"][0]["at"], Value::Null);
            assert!(dom.contains("Anomalies (1)"));
            assert!(dom.contains("after the quiet period, 1 keys differ between replicas: k"));
            assert!(dom.contains("data-failing-op=\"\""), "no op to mark");
        }
    }
    Ok(())
}

/// A 100k-op run's page loads in Chromium without an error and opens on its first anomaly.
#[test]
fn a_100k_op_timeline_loads_in_headless_chromium() -> Result<()> {
    let Some(chromium) = browser::chromium() else {
        return Ok(());
    };
    let events = weak_run::events(4, 100_000, 200);
    let report = check_events(
        "big-run.jsonl",
        &events,
        Format::Jsonl,
        &CheckOptions::default(),
    )?;
    let dir = tempfile::tempdir()?;
    let page = dir.path().join("timeline.html");
    std::fs::write(&page, render(&report))?;
    let shown = browser::render(chromium, &page, 1400, 900, None)?;
    assert!(
        shown.errors.is_empty(),
        "console errors: {:?}",
        shown.errors
    );
    assert!(
        shown.dom.contains("data-ready=\"1\""),
        "the script ran to the end"
    );
    assert!(shown.dom.contains("sampled evenly"));
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
