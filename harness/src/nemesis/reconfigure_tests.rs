//! `reconfigure`'s schedule against [`FakeCluster`]'s in-memory layout, under tokio's paused
//! clock: the subsets kept, the layout versions each event records, the composition into
//! partitions (Garage's `pr`), the undoing of a change that failed and the end of the schedule
//! (every member storage, the wait recorded). The real layout changes are
//! `harness/tests/garage_reconfigure.rs`'s.

use super::tests::{assert_alternate, ctx, nemesis_events};
use super::*;
use crate::testkit::FakeCluster;
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

/// `faults` for `secs` of paused time on a 5-member fake, `kinds` the partition kinds drawn.
async fn run(
    faults: &[Fault],
    seed: u64,
    kinds: &[&'static str],
    fake: &Arc<FakeCluster>,
    dir: &Path,
) -> anyhow::Result<usize> {
    let mut c = ctx(fake, dir);
    c.partition_kinds = kinds.to_vec();
    // Garage's placement is not known to quorate.
    c.placement = Arc::new(crate::targets::UnknownPlacement);
    let nemesis = Nemesis {
        faults: faults.to_vec(),
        interval: Duration::from_secs(2),
        seed,
        ctx: c,
    };
    let (_stop_tx, stop) = watch::channel(false);
    nemesis
        .run(Instant::now() + Duration::from_secs(30), stop)
        .await
}

fn names(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

const GARAGE_KINDS: [&str; 4] = ["one", "minority-third", "majority", "majorities-ring"];

#[tokio::test(start_paused = true)]
async fn each_window_keeps_a_seeded_subset_and_records_both_layouts() {
    let mut subsets_by_seed = Vec::new();
    for seed in [11, 11, 12] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeCluster::new(5));
        let n = run(
            &[Fault::Reconfigure],
            seed,
            &GARAGE_KINDS,
            &fake,
            dir.path(),
        )
        .await
        .unwrap();
        let ev = nemesis_events(dir.path());
        assert_eq!(assert_alternate(&ev).len(), n);
        assert!(n >= 10, "{n} windows in 30 s");
        let mut version = 1;
        let mut subsets = Vec::new();
        for (f, v, _) in &ev[..ev.len() - 1] {
            let (before, after) = (&v["before"], &v["after"]);
            assert_eq!(before["version"], version, "{f} {v}");
            // Every event is a real change: a new version, other roles.
            assert_eq!(after["version"], version + 1, "{f} {v}");
            assert_ne!(before["storage"], after["storage"], "{f} {v}");
            version += 1;
            let storage = names(&after["storage"]);
            let gateways = names(&after["gateways"]);
            assert_eq!(storage, names(&v["keep"]), "{f} {v}");
            if f == "reconfigure-start" {
                assert_eq!((storage.len(), gateways.len()), (3, 2), "{v}");
                subsets.push(storage);
            } else {
                assert_eq!(f, "reconfigure-stop");
                assert_eq!((storage.len(), gateways.len()), (5, 0), "{v}");
            }
        }
        // Not one subset every time: the rng draws them.
        let distinct: BTreeSet<&Vec<String>> = subsets.iter().collect();
        assert!(distinct.len() > 1, "{subsets:?}");
        // The end: every member storage (nothing to apply), the store settled.
        let (f, v, _) = ev.last().unwrap();
        assert_eq!(f, "reconfigure-settle");
        assert_eq!(v["settled"], true);
        assert_eq!(v["layout"]["version"], version);
        assert_eq!(names(&v["layout"]["storage"]).len(), 5);
        assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
        subsets_by_seed.push(subsets);
    }
    assert_eq!(subsets_by_seed[0], subsets_by_seed[1], "seed 11 twice");
    assert_ne!(subsets_by_seed[0], subsets_by_seed[2], "seeds 11 and 12");
}

#[tokio::test(start_paused = true)]
async fn with_partitions_membership_changes_while_the_network_is_split() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    run(
        &[Fault::Partition, Fault::Reconfigure],
        5,
        &GARAGE_KINDS,
        &fake,
        dir.path(),
    )
    .await
    .unwrap();
    let ev = nemesis_events(dir.path());
    let started = assert_alternate(&ev);
    assert!(started.contains(&"partition".to_string()), "{started:?}");
    let mut kinds = BTreeSet::new();
    for (i, (f, v, _)) in ev.iter().enumerate() {
        if f == "partition-start" {
            kinds.insert(v["kind"].as_str().unwrap().to_string());
            // Right after every cut: a layout change inside it, undone after the heal.
            assert_eq!(ev[i + 1].0, "reconfigure-start", "{ev:?}");
            assert_eq!(ev[i + 2].0, "partition-stop", "{ev:?}");
            assert_eq!(ev[i + 3].0, "reconfigure-stop", "{ev:?}");
        }
    }
    // Only the kinds asked for are drawn.
    assert!(
        kinds.iter().all(|k| GARAGE_KINDS.contains(&k.as_str())),
        "{kinds:?}"
    );
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
}

#[tokio::test(start_paused = true)]
async fn a_change_that_fails_is_undone_and_the_run_fails() {
    // Which subset seed 11 keeps first.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    run(&[Fault::Reconfigure], 11, &GARAGE_KINDS, &fake, dir.path())
        .await
        .unwrap();
    let first = names(&nemesis_events(dir.path())[0].1["keep"]);

    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail(&format!("assign {}", first.join(",")));
    let e = run(&[Fault::Reconfigure], 11, &GARAGE_KINDS, &fake, dir.path())
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("reconfigure could not be applied") && e.contains("injected failure"),
        "{e}"
    );
    assert!(!e.contains("undoing"), "the undoing worked: {e}");
    let ev = nemesis_events(dir.path());
    let f: Vec<&str> = ev.iter().map(|(f, _, _)| f.as_str()).collect();
    assert_eq!(
        f,
        [
            "reconfigure-start",
            "reconfigure-stop",
            "reconfigure-settle"
        ]
    );
    assert!(ev[0].2.as_deref().unwrap().contains("applying the layout"));
    assert_eq!(ev[0].1["before"]["version"], 1);
    assert!(ev[0].1.get("after").is_none(), "nothing applied: {ev:?}");
    assert!(ev[1].2.is_none() && ev[2].2.is_none(), "{ev:?}");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());

    // Every change failing: the undoing fails too, and the run's error says so.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail("layout");
    let e = run(&[Fault::Reconfigure], 11, &GARAGE_KINDS, &fake, dir.path())
        .await
        .unwrap_err();
    let e = format!("{e:#}");
    assert!(
        e.contains("undoing the partly applied reconfigure failed too"),
        "{e}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_target_without_membership_is_an_error_not_a_silent_skip() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let mut c = ctx(&fake, dir.path());
    c.membership = None;
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let e = reconfigure::start(&c, &mut rng).await.err().unwrap();
    assert!(
        format!("{e:#}").contains("gives no way to change its membership"),
        "{e:#}"
    );
    let ev = nemesis_events(dir.path());
    assert!(ev.iter().all(|(_, _, error)| error.is_some()), "{ev:?}");
}
