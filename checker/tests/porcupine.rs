//! Every history of Porcupine's test data gets the verdict its `expected.json` gives.
//!
//! The data lives in `tests/data/porcupine` (or `$QUORATE_PORCUPINE_DATA`);
//! a missing folder fails the test with a message, it is never skipped. Every invalid key must
//! also come with a counterexample whose failing op is one of the key's ops.

mod common;

use anyhow::{Context, Result};
use quorate_checker::history::pair;
use quorate_checker::import::{read_path, Format};
use quorate_checker::linear::{check, LinearOptions};
use quorate_checker::model::ModelKind;
use quorate_checker::verdict::Verdict;
use serde_json::Value;
use std::time::Duration;

#[test]
fn every_porcupine_history_gets_its_expected_verdict() -> Result<()> {
    let dir = common::porcupine_data_dir()?;
    let expected: serde_json::Map<String, Value> = serde_json::from_str(
        &std::fs::read_to_string(dir.join("expected.json")).context("reading expected.json")?,
    )
    .context("parsing expected.json")?;
    assert!(
        expected.len() >= 108,
        "expected.json lists {} files",
        expected.len()
    );
    let mut wrong = Vec::new();
    for (file, want) in &expected {
        let path = dir.join(file);
        let events = read_path(&path, Format::Auto).with_context(|| format!("reading {file}"))?;
        let history = pair(&events).with_context(|| format!("pairing {file}"))?;
        let model: ModelKind = want["model"]
            .as_str()
            .context("model")?
            .parse()
            .map_err(anyhow::Error::msg)?;
        let opts = LinearOptions {
            model,
            time_limit: Duration::from_secs(60),
            ..LinearOptions::default()
        };
        let result = check(&history, &opts).with_context(|| format!("checking {file}"))?;
        let want_valid = want["linearizable"].as_bool().context("linearizable")?;
        let got = result.valid;
        let ok = match want_valid {
            true => got == Verdict::Valid,
            false => got == Verdict::Invalid,
        };
        if !ok {
            wrong.push(format!(
                "{file}: expected linearizable={want_valid}, got {got:?}"
            ));
        }
        if let Some(n) = want["ops"].as_u64() {
            let ops: usize = result.keys.values().map(|k| k.ops).sum();
            assert_eq!(ops as u64, n, "{file}: op count");
        }
        for (key, r) in &result.keys {
            assert_ne!(
                r.valid,
                Verdict::Unknown,
                "{file} key {key:?}: {:?}",
                r.reason
            );
            if r.valid == Verdict::Invalid {
                let cx = r
                    .counterexample
                    .as_ref()
                    .with_context(|| format!("{file} key {key:?}: no counterexample"))?;
                let ids: Vec<u64> = history
                    .ops
                    .iter()
                    .filter(|o| &o.key == key)
                    .map(|o| o.id)
                    .collect();
                assert!(ids.contains(&cx.op), "{file}: counterexample op {}", cx.op);
                assert!(cx.prefix.iter().all(|p| ids.contains(p)));
                assert!(!cx.explanation.is_empty());
            }
        }
    }
    assert!(wrong.is_empty(), "wrong verdicts:\n{}", wrong.join("\n"));
    Ok(())
}
