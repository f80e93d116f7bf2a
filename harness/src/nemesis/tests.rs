//! The nemesis against [`FakeCluster`] under tokio's paused clock: whole schedules in no
//! time, every call the faults make written down, failures injected where a test wants them.
//! The real-process tests (`harness/tests/`) prove the faults reach real nodes; these pin the
//! schedule and the rollbacks.

use super::*;
use crate::testkit::{self, FakeCluster};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;

pub(super) fn ctx(fake: &Arc<FakeCluster>, dir: &Path) -> Ctx {
    let cluster: Arc<dyn Cluster> = fake.clone();
    Ctx {
        placement: Arc::new(crate::targets::node::ring::Ring::new(
            cluster.nodes(),
            64,
            3,
        )),
        cluster,
        rec: testkit::recorder(dir),
        busy_key: Arc::new(AtomicU64::new(0)),
        pin: KeyPin::new(),
        link_faults: LinkFaults::default(),
        clock: fake.clone(),
        clocks: Default::default(),
        leader: None,
        power_loss: Default::default(),
        lost_members: Default::default(),
    }
}

/// The nemesis events of `dir`'s history: name, value and error (index and time left out:
/// they follow the machine's clock, not the schedule).
pub(super) fn nemesis_events(dir: &Path) -> Vec<(String, Value, Option<String>)> {
    testkit::history(dir)
        .into_iter()
        .filter(|e| e["process"] == "nemesis")
        .map(|e| {
            let error = e.get("error").and_then(Value::as_str).map(String::from);
            (
                e["f"].as_str().unwrap().to_string(),
                e["value"].clone(),
                error,
            )
        })
        .collect()
}

/// Run the schedule of `faults` for `secs` (of paused time) on a fresh 5-node fake.
async fn schedule(
    faults: &[Fault],
    seed: u64,
    secs: u64,
    fake: &Arc<FakeCluster>,
    dir: &Path,
) -> anyhow::Result<usize> {
    let nemesis = Nemesis {
        faults: faults.to_vec(),
        interval: Duration::from_secs(2),
        seed,
        ctx: ctx(fake, dir),
    };
    let (_stop_tx, stop) = watch::channel(false);
    nemesis
        .run(Instant::now() + Duration::from_secs(secs), stop)
        .await
}

type Events = Vec<(String, Value, Option<String>)>;

/// A schedule of `faults` on a 5-node fake whose `fail` calls fail: the error it ended with,
/// its events and the fake.
async fn failed_schedule(
    faults: &[Fault],
    seed: u64,
    fail: &[&str],
) -> (String, Events, Arc<FakeCluster>) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    for call in fail {
        fake.fail(call);
    }
    let e = schedule(faults, seed, 60, &fake, dir.path())
        .await
        .unwrap_err();
    (format!("{e:#}"), nemesis_events(dir.path()), fake)
}

const ALL: [Fault; 8] = Fault::ALL;

/// Check that faults take turns: each one starts with the cluster whole and stops before the
/// next starts, except clock skew composed into a partition or slow links (it starts inside
/// them and stops right after), and stale-restore's own cuts. Returns the faults started.
fn assert_alternate(events: &[(String, Value, Option<String>)]) -> Vec<String> {
    let mut main: Option<String> = None;
    let mut skew_inside = false;
    let mut started = Vec::new();
    for (f, v, error) in events {
        assert!(error.is_none(), "{f} {v} failed: {error:?}");
        let (kind, start) = match (f.strip_suffix("-start"), f.strip_suffix("-stop")) {
            (Some(k), _) => (k, true),
            (_, Some(k)) => (k, false),
            _ => panic!("not a start or a stop: {f}"),
        };
        let during = main.as_deref();
        match (kind, start, during) {
            ("partition", _, Some("stale-restore")) => {}
            ("clock-skew", true, Some("partition" | "slow")) => {
                assert!(!skew_inside, "clock skew started twice: {events:?}");
                skew_inside = true;
            }
            ("clock-skew", false, None) if skew_inside => skew_inside = false,
            (k, true, None) => {
                main = Some(k.to_string());
                started.push(k.to_string());
            }
            (k, false, Some(m)) if k == m => main = None,
            _ => panic!("{f} while {during:?} is active: {events:?}"),
        }
    }
    assert_eq!(
        (main, skew_inside),
        (None, false),
        "a fault never stopped: {events:?}"
    );
    started
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_schedule_faults_take_turns_and_all_are_healed() {
    let mut runs = Vec::new();
    for seed in [7, 7, 8] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeCluster::new(5));
        let n = schedule(&ALL, seed, 60, &fake, dir.path()).await.unwrap();
        let events = nemesis_events(dir.path());
        let started = assert_alternate(&events);
        assert_eq!(n, started.len(), "faults counted: {started:?}");
        // 60 s of one fault every 2 s: one per interval, the last one healed in time.
        assert!((25..=30).contains(&n), "{n} faults in 60 s");
        for f in ALL {
            assert!(
                started.contains(&f.name().to_string()),
                "no {f:?}: {started:?}"
            );
        }
        assert_eq!(fake.faulted(), Vec::<String>::new(), "left faulted");
        assert_eq!(fake.calls().last().map(String::as_str), Some("heal"));
        runs.push((events, fake.calls()));
    }
    assert!(runs[0] == runs[1], "seed 7 twice: different schedules");
    assert!(runs[0].0 != runs[2].0, "seeds 7 and 8: the same schedule");
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_ends_the_schedule_with_everything_healed() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let nemesis = Nemesis {
        faults: vec![Fault::Kill, Fault::Pause],
        interval: Duration::from_secs(2),
        seed: 3,
        ctx: ctx(&fake, dir.path()),
    };
    let (stop_tx, stop) = watch::channel(false);
    let run = tokio::spawn(nemesis.run(Instant::now() + Duration::from_secs(600), stop));
    // Mid-way through the second fault's window (0.6 s gap, 1.4 s hold, per 2 s).
    tokio::time::sleep(Duration::from_millis(3000)).await;
    stop_tx.send(true).unwrap();
    assert_eq!(run.await.unwrap().unwrap(), 2);
    assert_eq!(assert_alternate(&nemesis_events(dir.path())).len(), 2);
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
}

#[tokio::test(start_paused = true)]
async fn a_partly_applied_clock_skew_is_undone_and_a_failed_undo_is_reported() {
    // n3 refuses its offset: the others are set back to true time, and the error names n3.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail("clock n3");
    let c = ctx(&fake, dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let e = format!("{:#}", clock_skew::start(&c, &mut rng).await.err().unwrap());
    assert!(e.contains("n3") && !e.contains("undoing"), "{e}");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    let ev = nemesis_events(dir.path());
    assert_eq!(ev.len(), 2, "{ev:?}");
    assert_eq!(ev[0].0, "clock-skew-start");
    assert!(ev[0].2.as_deref().unwrap().contains("n3"), "{ev:?}");
    assert!(ev[0].1["offsets_ms"].get("n3").is_none(), "n3 was not set");
    assert_eq!(ev[0].1["offsets_ms"].as_object().unwrap().len(), 4);
    assert_eq!((ev[1].0.as_str(), &ev[1].2), ("clock-skew-stop", &None));

    // n1 then refuses to go back: its stop event says so, and so does the error returned.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail("clock n3");
    fake.fail("clock n1 0");
    let c = ctx(&fake, dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let e = format!("{:#}", clock_skew::start(&c, &mut rng).await.err().unwrap());
    assert!(
        e.contains("undoing the partly applied clock-skew failed too") && e.contains("n1"),
        "{e}"
    );
    assert_eq!(
        fake.faulted().len(),
        1,
        "n1 still skewed: {:?}",
        fake.faulted()
    );
    let ev = nemesis_events(dir.path());
    assert_eq!(ev[1].0, "clock-skew-stop");
    assert!(ev[1].2.as_deref().unwrap().contains("n1"), "{ev:?}");
}

#[tokio::test(start_paused = true)]
async fn clock_skew_failing_inside_a_partition_undoes_the_partition_and_reports_both() {
    // Seed 3 starts with a partition, and clock skew composed into it fails at once.
    let faults = [Fault::Partition, Fault::ClockSkew];
    let (e, ev, fake) = failed_schedule(&faults, 3, &["clock"]).await;
    assert!(
        e.contains("clock-skew (during partition) could not be applied"),
        "{e}"
    );
    let names: Vec<&str> = ev.iter().map(|(f, _, _)| f.as_str()).collect();
    // Clock skew set no offset, so its undoing sets none either.
    let names_then = [
        "partition-start",
        "clock-skew-start",
        "clock-skew-stop",
        "partition-stop",
    ];
    assert_eq!(names, names_then);
    assert!(ev[1].2.is_some() && ev[3].2.is_none(), "{ev:?}");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());

    // The undoing heal fails too: its event carries the error, the run's error names both,
    // and the schedule's final heal (failing as well) is not lost either.
    let (e, ev, fake) = failed_schedule(&faults, 3, &["clock", "heal"]).await;
    for part in [
        "clock-skew (during partition) could not be applied",
        "undoing the partly applied partition failed too",
        "healing the cluster at the end of the fault schedule",
    ] {
        assert!(e.contains(part), "{part:?} not in {e}");
    }
    assert_eq!(ev[3].0, "partition-stop");
    assert!(ev[3].2.as_deref().unwrap().contains("heal"), "{ev:?}");
    assert!(!fake.faulted().is_empty(), "the links stay cut");
}

#[tokio::test(start_paused = true)]
async fn a_stale_restore_that_cannot_restore_is_undone_and_the_run_fails() {
    let (e, ev, fake) = failed_schedule(&[Fault::StaleRestore], 1, &["restore"]).await;
    assert!(
        e.contains("stale-restore could not restore its node"),
        "{e}"
    );
    assert!(!e.contains("undoing"), "the undoing worked: {e}");
    // The node was restarted all the same and every cut healed.
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    let last = ev.last().unwrap();
    assert_eq!(last.0, "stale-restore-stop");
    assert!(last.2.as_deref().unwrap().contains("restore"), "{ev:?}");
}

#[tokio::test(start_paused = true)]
async fn slow_links_partly_applied_say_on_their_event_that_undoing_failed() {
    // Two delays land, the third fails, and so does taking the first two off again.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail_after("delay", 2);
    let c = ctx(&fake, dir.path());
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let e = format!("{:#}", slow::start(&c, &mut rng).await.err().unwrap());
    assert!(
        e.contains("undoing the partly applied slow failed too"),
        "{e}"
    );
    let ev = nemesis_events(dir.path());
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(ev[0].0, "slow-start");
    assert!(
        ev[0].2.as_deref().unwrap().contains("undoing"),
        "the event says the undoing failed: {ev:?}"
    );
    assert!(c.pin.get().is_none(), "clients released");
}

#[tokio::test(start_paused = true)]
async fn a_partition_that_cuts_nothing_is_an_error_not_an_applied_fault() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(1));
    let c = ctx(&fake, dir.path());
    let e = partition::apply(&c, "one", Vec::new(), None)
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cuts no link among 1 nodes"), "{e}");
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let e = partition::start(&c, &mut rng).await.err().unwrap();
    assert!(
        e.to_string().contains("no partition kind cuts a link"),
        "{e}"
    );
    let ev = nemesis_events(dir.path());
    assert_eq!(ev.len(), 2);
    assert!(ev
        .iter()
        .all(|(f, _, error)| f == "partition-start" && error.is_some()));
}

/// `harness/tests/garage.rs` runs kill, pause and clock-skew on 3 Garage members with seed 3
/// and asserts the clock skew happened: seed 3's schedule (placement unknown, as for Garage)
/// opens with it, and the first fault is reached in any run.
#[tokio::test(start_paused = true)]
async fn seed_3_of_the_garage_local_run_opens_with_clock_skew() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(3));
    let mut c = ctx(&fake, dir.path());
    c.placement = Arc::new(crate::targets::UnknownPlacement);
    let nemesis = Nemesis {
        faults: vec![Fault::Kill, Fault::Pause, Fault::ClockSkew],
        interval: Duration::from_secs(2),
        seed: 3,
        ctx: c,
    };
    let (_stop_tx, stop) = watch::channel(false);
    let deadline = Instant::now() + Duration::from_secs(8);
    nemesis.run(deadline, stop).await.unwrap();
    let ev = nemesis_events(dir.path());
    assert_eq!(ev[0].0, "clock-skew-start", "{ev:?}");
    assert_eq!(ev[0].1["offsets_ms"].as_object().unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn a_kill_of_two_that_kills_one_restarts_it_and_a_failed_restart_is_reported() {
    // A seed whose minority of 5 is two nodes, so the second kill can fail after the first.
    let nodes = crate::backend::node_ids(5);
    let seed = (0..)
        .find(|s| minority(&nodes, &mut ChaCha8Rng::seed_from_u64(*s)).len() == 2)
        .unwrap();
    for restart_fails in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeCluster::new(5));
        fake.fail_after("kill", 1);
        if restart_fails {
            fake.fail("restart");
        }
        let c = ctx(&fake, dir.path());
        let e = kill::start(&c, &mut ChaCha8Rng::seed_from_u64(seed))
            .await
            .err()
            .unwrap();
        let e = format!("{e:#}");
        assert!(e.starts_with("kill-start: kill n"), "{e}");
        assert_eq!(
            e.contains("undoing the partly applied kill failed too"),
            restart_fails
        );
        let ev = nemesis_events(dir.path());
        let killed = &ev[0].1["nodes"];
        assert_eq!(
            (ev[0].0.as_str(), killed.as_array().unwrap().len()),
            ("kill-start", 1)
        );
        assert_eq!(ev[1].0, "kill-stop");
        assert_eq!(ev[1].2.is_some(), restart_fails, "{ev:?}");
        let left = if restart_fails { 1 } else { 0 };
        assert_eq!(fake.faulted().len(), left, "{:?}", fake.faulted());
    }
}

/// A leader that is always `n3`, or never known.
struct FakeLeader(Option<&'static str>);

impl crate::targets::Leader for FakeLeader {
    fn leader<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
    ) -> crate::targets::BoxFuture<'a, Result<String, String>> {
        Box::pin(async move {
            self.0
                .map(String::from)
                .ok_or_else(|| "no leader named by a majority".to_string())
        })
    }
}

/// The start events of a 60 s schedule of kill, pause and partition with `leader`.
async fn leader_schedule(leader: Option<&'static str>, seed: u64) -> Events {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let mut c = ctx(&fake, dir.path());
    c.leader = Some(Arc::new(FakeLeader(leader)));
    let nemesis = Nemesis {
        faults: vec![Fault::Partition, Fault::Kill, Fault::Pause],
        interval: Duration::from_secs(2),
        seed,
        ctx: c,
    };
    let (_stop_tx, stop) = watch::channel(false);
    nemesis
        .run(Instant::now() + Duration::from_secs(60), stop)
        .await
        .unwrap();
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    let events = nemesis_events(dir.path());
    assert_alternate(&events);
    events
        .into_iter()
        .filter(|(f, _, _)| f.ends_with("-start"))
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_target_with_a_leader_has_it_killed_paused_and_isolated_some_of_the_time() {
    // Partitions take one of six kinds, so a few seeds to see `one` aim at the leader.
    let mut starts = Vec::new();
    for seed in 11..=14 {
        starts.extend(leader_schedule(Some("n3"), seed).await);
    }
    let mut aimed = BTreeSet::new();
    let mut random = BTreeSet::new();
    for (f, v, _) in &starts {
        let kind = f.trim_end_matches("-start");
        if f == "partition-start" && v["kind"] != "one" {
            assert!(v.get("leader").is_none(), "{v}");
            continue;
        }
        match v.get("leader") {
            Some(l) => {
                assert_eq!(l, "n3");
                aimed.insert(kind.to_string());
                if f == "partition-start" {
                    // Every cut link is one of n3's, both ways: n3 alone on its side.
                    let drop = v["drop"].as_array().unwrap();
                    assert_eq!(drop.len(), 8, "{v}");
                    assert!(drop.iter().all(|l| l[0] == "n3" || l[1] == "n3"), "{v}");
                } else {
                    assert_eq!(v["nodes"], serde_json::json!(["n3"]), "{v}");
                }
            }
            None => {
                random.insert(kind.to_string());
            }
        }
    }
    let all: BTreeSet<String> = ["kill", "pause", "partition"].map(String::from).into();
    assert_eq!(
        aimed, all,
        "not every fault aimed at the leader: {starts:?}"
    );
    assert!(
        random.contains("kill") && random.contains("pause"),
        "never a random member: {starts:?}"
    );
    // Same seed, same schedule.
    assert_eq!(
        leader_schedule(Some("n3"), 11).await,
        leader_schedule(Some("n3"), 11).await
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_cannot_be_found_is_said_and_the_fault_draws_as_usual() {
    let starts = leader_schedule(None, 11).await;
    let unknown: Vec<_> = starts
        .iter()
        .filter(|(_, v, _)| v.get("leader_unknown").is_some())
        .collect();
    assert!(!unknown.is_empty(), "{starts:?}");
    for (f, v, _) in unknown {
        assert!(v.get("leader").is_none(), "{f} {v}");
        let why = v["leader_unknown"].as_str().unwrap();
        assert!(why.contains("no leader"), "{why}");
    }
}

#[tokio::test(start_paused = true)]
async fn power_loss_cuts_a_majority_of_the_busy_keys_replicas_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let mut c = ctx(&fake, dir.path());
    c.power_loss = power_loss::Scope::Majority;
    let homes = c.home_nodes(&c.busy_key());
    assert_eq!(homes.len(), 3);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let Active::PowerLoss(nodes) = power_loss::start(&c, &mut rng).await.unwrap() else {
        panic!("not a power loss")
    };
    assert_eq!(nodes.len(), 2, "{nodes:?}");
    assert!(
        nodes.iter().all(|n| homes.contains(n)),
        "{nodes:?} of {homes:?}"
    );
    // Both die before either is cut: a rack goes down at once.
    let calls = fake.calls();
    assert_eq!(
        calls,
        [
            format!("kill {}", nodes[0]),
            format!("kill {}", nodes[1]),
            format!("power-cut {}", nodes[0]),
            format!("power-cut {}", nodes[1]),
        ]
    );
    power_loss::stop(&c, nodes.clone()).await.unwrap();
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    let ev = nemesis_events(dir.path());
    assert_eq!(ev[0].0, "power-loss-start");
    assert_eq!(ev[0].1["key"], c.busy_key());
    assert_eq!(ev[0].1["dropped"][&nodes[0]]["bytes"], 4096);
    assert_eq!(
        (ev[1].0.as_str(), &ev[1].1["nodes"]),
        ("power-loss-stop", &serde_json::json!(nodes))
    );

    // One member by default.
    let c = ctx(&fake, dir.path());
    let (one, key) = power_loss::choose(&c, &mut rng);
    assert_eq!((one.len(), key), (1, None));
}

#[tokio::test(start_paused = true)]
async fn a_failed_power_cut_brings_back_every_member_it_took_down() {
    let (e, ev, fake) = failed_schedule(&[Fault::PowerLoss], 2, &["power-cut"]).await;
    assert!(e.contains("power cut"), "{e}");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    assert_eq!(ev[0].0, "power-loss-start");
    assert!(ev[0].2.as_deref().unwrap().contains("power cut"), "{ev:?}");
    assert_eq!(ev[1].0, "power-loss-stop");
}

#[tokio::test(start_paused = true)]
async fn a_member_that_will_not_start_after_a_power_cut_is_a_finding_and_ends_the_schedule() {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    fake.fail("restart");
    let nemesis = Nemesis {
        faults: vec![Fault::PowerLoss],
        interval: Duration::from_secs(2),
        seed: 4,
        ctx: ctx(&fake, dir.path()),
    };
    let lost = nemesis.ctx.lost_members.clone();
    let (_stop_tx, stop) = watch::channel(false);
    // Not an error, and no second fault after it (10 s would hold five).
    let started = nemesis
        .run(Instant::now() + Duration::from_secs(10), stop)
        .await
        .unwrap();
    assert_eq!(started, 1);
    let ev = nemesis_events(dir.path());
    assert_eq!(ev.len(), 2, "{ev:?}");
    let cut = ev[0].1["nodes"][0].as_str().unwrap().to_string();
    assert_eq!(ev[1].0, "power-loss-stop");
    assert_eq!(ev[1].2, None, "a finding, not an error");
    assert_eq!(ev[1].1["nodes"], serde_json::json!([]));
    assert!(ev[1].1["not_restarted"][&cut]
        .as_str()
        .unwrap()
        .contains("injected failure"));
    assert!(lost.lock().unwrap().contains_key(&cut));
    assert_eq!(fake.faulted(), [format!("{cut} killed")]);
}
