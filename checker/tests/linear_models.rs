//! Small hand-written histories pinning each model's corner cases, and golden
//! counterexamples.
//!
//! Histories are written one event a line: `process type f value [error]`, e.g.
//! `1 fail cas [1,2] mismatch`; an optional `key=K` first word sets the key. Event `i` happens
//! at `i` ms, so times in sentences read "0.004 s" for line 4.

#[path = "common/lines.rs"]
mod lines;

use lines::history;
use quorate_checker::linear::{check, KeyResult, LinearOptions, LinearResult};
use quorate_checker::model::ModelKind;
use quorate_checker::verdict::Verdict;
use serde_json::{json, Value};

fn run(model: ModelKind, initial: Option<Value>, text: &str) -> LinearResult {
    let opts = LinearOptions {
        model,
        initial,
        ..LinearOptions::default()
    };
    check(&history(text), &opts).expect("ops fit the model")
}

fn key(r: &LinearResult) -> &KeyResult {
    r.keys.values().next().expect("one key")
}

fn verdict(model: ModelKind, text: &str) -> Verdict {
    key(&run(model, None, text)).valid
}

const CAS: ModelKind = ModelKind::CasRegister;

#[test]
fn golden_stale_read() {
    let r = run(
        CAS,
        None,
        "0 invoke write 1
         0 ok write 1
         1 invoke write 2
         1 ok write 2
         2 invoke read null
         2 ok read 1",
    );
    let k = key(&r);
    assert_eq!(k.valid, Verdict::Invalid);
    assert_eq!(r.valid, Verdict::Invalid);
    let cx = k.counterexample.as_ref().expect("counterexample");
    assert_eq!(cx.op, 4);
    assert_eq!(cx.prefix, vec![0, 2]);
    assert_eq!(
        cx.explanation,
        "read of 1 at 0.004 s returned a value overwritten by write 2, which completed at \
         0.003 s before the read began"
    );
}

#[test]
fn golden_shortest_prefix_ends_at_the_first_impossible_op() {
    // The read at line 4 is already impossible; the later ones must not be blamed.
    let r = run(
        CAS,
        None,
        "0 invoke write 1
         0 ok write 1
         1 invoke read null
         2 invoke write 2
         1 ok read 3
         2 ok write 2
         1 invoke read null
         1 ok read 1",
    );
    let cx = key(&r).counterexample.clone().expect("counterexample");
    assert_eq!(cx.op, 2);
    assert_eq!(cx.prefix, vec![0]);
    assert_eq!(
        cx.explanation,
        "read of 3 at 0.002 s returned a value that no op wrote"
    );
}

#[test]
fn golden_value_written_only_later() {
    let r = run(
        CAS,
        None,
        "0 invoke read null
         0 ok read 5
         1 invoke write 5
         1 ok write 5",
    );
    let cx = key(&r).counterexample.clone().expect("counterexample");
    assert_eq!(cx.op, 0);
    assert_eq!(cx.prefix, Vec::<u64>::new());
    assert_eq!(
        cx.explanation,
        "read of 5 at 0.000 s returned a value first written by write 5 at 0.002 s, after the \
         read completed"
    );
}

#[test]
fn invoke_on_the_line_after_a_completion_follows_it() {
    // The read is invoked on the line right after the write completes: it must see it.
    let after = "0 invoke write 1
                 0 ok write 1
                 1 invoke read null
                 1 ok read null";
    assert_eq!(verdict(CAS, after), Verdict::Invalid);
    // Invoked one line earlier, the read overlaps the write and may precede it.
    let overlapping = "0 invoke write 1
                       1 invoke read null
                       0 ok write 1
                       1 ok read null";
    assert_eq!(verdict(CAS, overlapping), Verdict::Valid);
}

#[test]
fn initial_value() {
    let reads_zero = "0 invoke read null
                      0 ok read 0";
    let reads_null = "0 invoke read null
                      0 ok read null";
    assert_eq!(
        key(&run(CAS, Some(json!(0)), reads_zero)).valid,
        Verdict::Valid
    );
    assert_eq!(
        key(&run(CAS, Some(json!(0)), reads_null)).valid,
        Verdict::Invalid
    );
    assert_eq!(key(&run(CAS, None, reads_zero)).valid, Verdict::Invalid);
    assert_eq!(key(&run(CAS, None, reads_null)).valid, Verdict::Valid);
    // A cas from the initial value.
    let cas = "0 invoke cas [0,1]
               0 ok cas [0,1]
               0 invoke read null
               0 ok read 1";
    assert_eq!(key(&run(CAS, Some(json!(0)), cas)).valid, Verdict::Valid);
    assert_eq!(key(&run(CAS, None, cas)).valid, Verdict::Invalid);
}

#[test]
fn info_ops_may_take_effect_late_or_never() {
    // An info write seen long after its invoke (and after its info line).
    let late = "0 invoke write 1
                0 info write 1 timeout
                1 invoke read null
                1 ok read null
                1 invoke read null
                1 ok read 1";
    assert_eq!(verdict(CAS, late), Verdict::Valid);
    // Never seen at all.
    let never = "0 invoke write 1
                 0 info write 1 timeout
                 1 invoke read null
                 1 ok read null";
    assert_eq!(verdict(CAS, never), Verdict::Valid);
    // But not before its invoke.
    let early = "1 invoke read null
                 1 ok read 1
                 0 invoke write 1
                 0 info write 1 timeout";
    assert_eq!(verdict(CAS, early), Verdict::Invalid);
    // Once seen, it cannot be un-seen by a read that follows in real time.
    let flicker = "0 invoke write 1
                   0 info write 1 timeout
                   1 invoke read null
                   1 ok read 1
                   1 invoke read null
                   1 ok read null";
    assert_eq!(verdict(CAS, flicker), Verdict::Invalid);
    // An invoke never completed counts as info.
    let pending = "0 invoke write 1
                   1 invoke read null
                   1 ok read 1";
    assert_eq!(verdict(CAS, pending), Verdict::Valid);
}

#[test]
fn unobserved_info_write_still_satisfies_a_mismatch() {
    // Nothing reads 2, but the mismatch cas needs the register away from 1: only the info
    // write of 2 can have done that, so it must not be dropped.
    let h = "0 invoke write 1
             0 ok write 1
             1 invoke write 2
             1 info write 2 timeout
             2 invoke cas [1,3]
             2 fail cas [1,3] mismatch";
    assert_eq!(verdict(CAS, h), Verdict::Valid);
}

#[test]
fn many_info_ops_do_not_blow_up() {
    // 40 timed-out writes of 5 repeated values, all pending to the end, then reads.
    let mut h = String::new();
    for p in 0..40 {
        h += &format!(
            "{p} invoke write {}\n{p} info write {} timeout\n",
            p % 5,
            p % 5
        );
    }
    for v in [3, 1, 4, 1, 0, 2] {
        h += &format!("100 invoke read null\n100 ok read {v}\n");
    }
    assert_eq!(verdict(CAS, &h), Verdict::Valid);
    h += "100 invoke read null\n100 ok read 9\n";
    assert_eq!(verdict(CAS, &h), Verdict::Invalid);
}

#[test]
fn mismatch_fail_is_an_observation() {
    // The register certainly held 1 throughout the cas: a mismatch is impossible.
    let held = "0 invoke write 1
                0 ok write 1
                1 invoke cas [1,2]
                1 fail cas [1,2] mismatch";
    assert_eq!(verdict(CAS, held), Verdict::Invalid);
    // With a concurrent write of 3, the register may have held 3 at some instant.
    let concurrent = "0 invoke write 1
                      0 ok write 1
                      1 invoke cas [1,2]
                      2 invoke write 3
                      1 fail cas [1,2] mismatch
                      2 ok write 3";
    assert_eq!(verdict(CAS, concurrent), Verdict::Valid);
    // A plain fail did not happen and says nothing.
    let plain = "0 invoke write 1
                 0 ok write 1
                 1 invoke cas [1,2]
                 1 fail cas [1,2] 503";
    assert_eq!(verdict(CAS, plain), Verdict::Valid);
}

#[test]
fn failed_ops_did_not_happen() {
    let h = "0 invoke write 1
             0 fail write 1 503
             1 invoke read null
             1 ok read 1";
    assert_eq!(verdict(CAS, h), Verdict::Invalid);
}

#[test]
fn repeated_values() {
    // The second read of 1 names the second write of 1.
    let ok = "0 invoke write 1
              0 ok write 1
              0 invoke write 2
              0 ok write 2
              1 invoke read null
              0 invoke write 1
              0 ok write 1
              1 ok read 1";
    assert_eq!(verdict(CAS, ok), Verdict::Valid);
    let bad = "0 invoke write 1
               0 ok write 1
               0 invoke write 2
               0 ok write 2
               1 invoke read null
               1 ok read 1
               0 invoke write 1
               0 ok write 1";
    assert_eq!(verdict(CAS, bad), Verdict::Invalid);
    // Concurrent cas ops on repeated values, one order works: 1 → 2 → 1 → 2.
    let cas = "0 invoke write 1
               0 ok write 1
               1 invoke cas [1,2]
               2 invoke cas [2,1]
               3 invoke cas [1,2]
               1 ok cas [1,2]
               2 ok cas [2,1]
               3 ok cas [1,2]
               0 invoke read null
               0 ok read 2";
    assert_eq!(verdict(CAS, cas), Verdict::Valid);
}

#[test]
fn plain_register_rejects_cas_and_null_writes() {
    let h = history(
        "0 invoke cas [1,2]
         0 ok cas [1,2]",
    );
    let opts = LinearOptions {
        model: ModelKind::Register,
        ..LinearOptions::default()
    };
    let err = check(&h, &opts).expect_err("cas does not fit register");
    assert_eq!(err.op, 0);
    assert!(
        err.message.contains("expected read or write"),
        "{}",
        err.message
    );
    let null = history(
        "0 invoke write null
         0 ok write null",
    );
    let err = check(&null, &LinearOptions::default()).expect_err("null write");
    assert!(err.message.contains("write of null"), "{}", err.message);
    let bad_cas = history(
        "0 invoke cas 5
         0 ok cas 5",
    );
    let err = check(&bad_cas, &LinearOptions::default()).expect_err("cas value");
    assert!(
        err.message.contains("expected [expected, new]"),
        "{}",
        err.message
    );
}

#[test]
fn kv_appends_and_gets() {
    let kv = ModelKind::Kv;
    let ok = r#"0 invoke append "a"
                1 invoke append "b"
                0 ok append "a"
                1 ok append "b"
                2 invoke get null
                2 ok get "ba"
                2 invoke put "x"
                2 ok put "x"
                2 invoke get null
                2 ok get "x""#;
    assert_eq!(verdict(kv, ok), Verdict::Valid);
    let bad = r#"0 invoke append "a"
                 0 ok append "a"
                 1 invoke append "b"
                 1 ok append "b"
                 2 invoke get null
                 2 ok get "ba""#;
    assert_eq!(verdict(kv, bad), Verdict::Invalid);
    let empty = r#"0 invoke get null
                   0 ok get """#;
    assert_eq!(verdict(kv, empty), Verdict::Valid);
    let wrong_type = history(
        "0 invoke append 5
         0 ok append 5",
    );
    let opts = LinearOptions {
        model: kv,
        ..LinearOptions::default()
    };
    assert!(check(&wrong_type, &opts).is_err());
}

#[test]
fn set_adds_and_reads() {
    let set = ModelKind::Set;
    let ok = "0 invoke add 1
              1 invoke add 2
              0 ok add 1
              2 invoke read null
              2 ok read [1]
              1 ok add 2
              2 invoke read null
              2 ok read [1,2]";
    assert_eq!(verdict(set, ok), Verdict::Valid);
    let lost = "0 invoke add 1
                0 ok add 1
                2 invoke read null
                2 ok read []";
    assert_eq!(verdict(set, lost), Verdict::Invalid);
    let phantom = "2 invoke read null
                   2 ok read [7]";
    assert_eq!(verdict(set, phantom), Verdict::Invalid);
    let info_add = "0 invoke add 1
                    0 info add 1 timeout
                    2 invoke read null
                    2 ok read [1]
                    2 invoke read null
                    2 ok read [1]";
    assert_eq!(verdict(set, info_add), Verdict::Valid);
}

#[test]
fn every_key_gets_a_verdict_and_every_invalid_key_a_counterexample() {
    let r = run(
        CAS,
        None,
        "key=a 0 invoke write 1
         key=a 0 ok write 1
         key=b 1 invoke write 1
         key=b 1 ok write 1
         key=a 0 invoke read null
         key=a 0 ok read 2
         key=b 1 invoke read null
         key=b 1 ok read 1
         key=c 2 invoke read null
         key=c 2 ok read 4",
    );
    assert_eq!(r.valid, Verdict::Invalid);
    assert_eq!(r.keys["a"].valid, Verdict::Invalid);
    assert_eq!(r.keys["b"].valid, Verdict::Valid);
    assert_eq!(r.keys["c"].valid, Verdict::Invalid);
    assert_eq!(r.keys["a"].counterexample.as_ref().map(|c| c.op), Some(4));
    assert_eq!(r.keys["c"].counterexample.as_ref().map(|c| c.op), Some(8));
    assert!(r.keys["b"].counterexample.is_none());
}

#[test]
fn a_key_over_its_memory_bound_is_unknown_and_others_still_judged() {
    // 1,500 sequential write/read pairs on key "big" take well over the search's check
    // interval; a one-byte bound stops it there.
    let mut h = String::new();
    for i in 0..1500 {
        h += &format!("key=big 0 invoke write {i}\nkey=big 0 ok write {i}\n");
        h += &format!("key=big 0 invoke read null\nkey=big 0 ok read {i}\n");
    }
    h += "key=small 1 invoke read null\nkey=small 1 ok read 3\n";
    let opts = LinearOptions {
        memory_limit: 1,
        ..LinearOptions::default()
    };
    let r = check(&history(&h), &opts).expect("fits");
    assert_eq!(r.keys["big"].valid, Verdict::Unknown);
    assert_eq!(
        r.keys["big"].reason.as_deref(),
        Some("memory limit 1 bytes")
    );
    assert_eq!(r.keys["small"].valid, Verdict::Invalid);
    assert_eq!(r.valid, Verdict::Invalid);
}

#[test]
fn a_key_out_of_time_is_unknown_with_its_reason() {
    // A zero budget is spent by the search's first check of the clock (after 1,024 steps),
    // whatever the machine's speed: no wall-clock assumption.
    let mut h = String::new();
    for i in 0..1500 {
        h += &format!("key=big 0 invoke write {i}\nkey=big 0 ok write {i}\n");
        h += &format!("key=big 0 invoke read null\nkey=big 0 ok read {i}\n");
    }
    h += "key=small 1 invoke read null\nkey=small 1 ok read null\n";
    let opts = LinearOptions {
        time_limit: std::time::Duration::ZERO,
        ..LinearOptions::default()
    };
    let r = check(&history(&h), &opts).expect("fits");
    assert_eq!(r.keys["big"].valid, Verdict::Unknown);
    assert_eq!(r.keys["big"].reason.as_deref(), Some("time limit 0 s"));
    assert_eq!(r.keys["small"].valid, Verdict::Valid);
    assert_eq!(r.valid, Verdict::Unknown);
}

/// JSON objects are unordered: a read that returns the written object with its keys in
/// another order (as Go's encoder, which sorts keys, would) saw the same value; so does a cas
/// expecting it. A different object is still told apart. Through the public file path, so
/// the reader's `preserve_order` maps meet the models as they do in `quorate check`.
#[test]
fn reordered_objects_are_equal_values() -> anyhow::Result<()> {
    use quorate_checker::check::{check_file, CheckOptions};
    let lines = |read: &str| {
        format!(
            r#"{{"index":0,"process":0,"type":"invoke","f":"write","key":"k","value":{{"a":1,"b":{{"x":2,"y":[{{"p":1,"q":2}}]}}}}}}
{{"index":1,"process":0,"type":"ok","f":"write","key":"k","value":{{"a":1,"b":{{"x":2,"y":[{{"p":1,"q":2}}]}}}}}}
{{"index":2,"process":1,"type":"invoke","f":"read","key":"k","value":null}}
{{"index":3,"process":1,"type":"ok","f":"read","key":"k","value":{read}}}
{{"index":4,"process":2,"type":"invoke","f":"cas","key":"k","value":[{read},{{"z":1,"a":0}}]}}
{{"index":5,"process":2,"type":"ok","f":"cas","key":"k","value":[{read},{{"z":1,"a":0}}]}}
{{"index":6,"process":1,"type":"invoke","f":"read","key":"k","value":null}}
{{"index":7,"process":1,"type":"ok","f":"read","key":"k","value":{{"a":0,"z":1}}}}
"#
        )
    };
    let dir = tempfile::tempdir()?;
    let check = |name: &str, read: &str| -> anyhow::Result<Verdict> {
        let path = dir.path().join(name);
        std::fs::write(&path, lines(read))?;
        Ok(check_file(&path, &CheckOptions::default())?.valid)
    };
    assert_eq!(
        check(
            "reordered.jsonl",
            r#"{"b":{"y":[{"q":2,"p":1}],"x":2},"a":1}"#
        )?,
        Verdict::Valid
    );
    assert_eq!(
        check(
            "different.jsonl",
            r#"{"b":{"y":[{"q":2,"p":3}],"x":2},"a":1}"#
        )?,
        Verdict::Invalid
    );
    Ok(())
}
