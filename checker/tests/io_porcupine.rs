//! Every Porcupine data file reads, is recognised by `auto` as the format `expected.json` names,
//! pairs, and has the number of ops `expected.json` gives.

mod common;

use anyhow::{Context, Result};
use quorate_checker::history::{pair, EventType};
use quorate_checker::import::{read_path_as, Format};

#[test]
fn every_file_reads_in_the_expected_format_with_the_expected_op_count() -> Result<()> {
    let dir = common::porcupine_data_dir()?;
    let expected: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json"))?)?;
    let files = expected.as_object().context("expected.json is an object")?;
    assert!(
        files.len() >= 108,
        "expected 102 etcd + 6 kv files, found {}",
        files.len()
    );
    for (name, want) in files {
        let path = dir.join(name);
        let want_format: Format = want["format"].as_str().unwrap().parse().unwrap();
        for asked in [Format::Auto, want_format] {
            let (events, format) =
                read_path_as(&path, asked).with_context(|| format!("reading {name} as {asked}"))?;
            assert_eq!(format, want_format, "{name}: auto recognised {format}");
            let history = pair(&events).with_context(|| format!("pairing {name}"))?;
            assert_eq!(
                history.ops.len() as u64,
                want["ops"].as_u64().unwrap(),
                "{name}: op count"
            );
            // Indices are positions when the file gives none.
            assert!(events
                .iter()
                .enumerate()
                .all(|(i, e)| e.index == Some(i as u64)));
            assert!(events
                .iter()
                .filter(|e| e.kind == EventType::Invoke)
                .all(|e| e.is_client()));
        }
    }
    Ok(())
}

#[test]
fn kv_files_have_keys_and_etcd_files_do_not() -> Result<()> {
    let dir = common::porcupine_data_dir()?;
    let (kv, _) = read_path_as(&dir.join("kv/c10-ok.txt"), Format::Auto)?;
    assert!(kv.iter().all(|e| e.key.is_some()));
    assert!(kv.iter().any(|e| e.f == "append") && kv.iter().any(|e| e.f == "get"));
    let (etcd, _) = read_path_as(&dir.join("jepsen/etcd_000.log"), Format::Auto)?;
    assert!(etcd.iter().all(|e| e.key.is_none()));
    // etcd_000 holds mismatch fails (`:fail :cas`) and timed-out writes (`:info`).
    let h = pair(&etcd)?;
    use quorate_checker::history::Outcome;
    assert!(h.ops.iter().any(|o| o.outcome == Outcome::Mismatch));
    assert!(h.ops.iter().any(|o| o.outcome == Outcome::Info));
    Ok(())
}
