//! The runner's phases against `testkit`'s fake cluster and target under tokio's paused clock:
//! a whole run in no time and no process. The real-process runs are `harness/tests/`.

use super::*;
use crate::testkit::{self, FakeCluster, FakeTarget};

/// 10 s of faults every 2 s, 4 clients at 200 ops/s in all, 3 s quiet.
fn config() -> RunConfig {
    RunConfig {
        nodes: crate::backend::node_ids(5),
        node_args: Vec::new(),
        ring_n: 3,
        vnodes: 64,
        workload: RegisterWorkload::new("read,write", 50, 4, 1).unwrap(),
        set: None,
        link_faults: LinkFaults::default(),
        time_limit: Duration::from_secs(10),
        interval: Duration::from_secs(2),
        quiet: Duration::from_secs(3),
        op_timeout: Duration::from_millis(500),
        rate: Some(200.0),
        direct_clients: false,
        seed: 1,
        backend: BackendKind::Local,
        target: target::Spec::Node,
    }
}

/// Drive `faults` on a fresh 5-node fake; the history and the fake come back too.
async fn drive_fake(
    faults: &[Fault],
    fail: &[&str],
    stop: watch::Receiver<bool>,
) -> (anyhow::Result<RunOutcome>, Vec<Value>, Arc<FakeCluster>) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    for call in fail {
        fake.fail(call);
    }
    let sut = FakeTarget::new(fake.clone());
    let rec = testkit::recorder(dir.path());
    let cluster: Arc<dyn Cluster> = fake.clone();
    let out = drive(&config(), faults, &cluster, &sut, &rec, stop).await;
    (out, testkit::history(dir.path()), fake)
}

fn is_final_read(e: &Value) -> bool {
    e["process"]
        .as_u64()
        .is_some_and(|p| p >= FINAL_READ_PROCESSES)
}

#[tokio::test(start_paused = true)]
async fn the_phases_run_in_order_faults_healed_before_convergence_then_every_key_read() {
    let (_stop_tx, stop) = watch::channel(false);
    let faults = [Fault::Partition, Fault::Kill, Fault::Pause];
    let (out, h, fake) = drive_fake(&faults, &[], stop).await;
    let out = out.unwrap();
    let at = |f: &dyn Fn(&Value) -> bool| h.iter().position(f);
    let last = |f: &dyn Fn(&Value) -> bool| h.iter().rposition(f);
    let slot_op = |e: &Value| e["process"].is_u64() && !is_final_read(e);
    let convergence = at(&|e| e["f"] == "convergence").expect("a convergence event");
    let last_fault = last(&|e| e["process"] == "nemesis").expect("faults");
    let first_final = at(&is_final_read).expect("final reads");
    assert!(
        last_fault < convergence,
        "faults after the convergence observation"
    );
    assert!(last(&slot_op).unwrap() < convergence, "client ops after it");
    assert!(convergence < first_final, "final reads before it");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    // Every fault counted, every client op counted.
    let starts = h
        .iter()
        .filter(|e| e["process"] == "nemesis" && e["f"].as_str().unwrap().ends_with("-start"));
    assert_eq!(out.faults, starts.count());
    assert!(
        (4..=5).contains(&out.faults),
        "{} faults in 10 s",
        out.faults
    );
    let invokes = h.iter().filter(|e| e["type"] == "invoke").count();
    assert_eq!(out.invokes as usize, invokes);
    assert!(out.ok > 500 && !out.interrupted, "{out:?}");
    // One final read of every key the clients reached, each answered.
    let busiest = h
        .iter()
        .filter(|e| slot_op(e))
        .filter_map(|e| e["key"].as_str()?.strip_prefix('k')?.parse::<u64>().ok())
        .max()
        .unwrap();
    let finals: Vec<&Value> = h.iter().filter(|e| is_final_read(e)).collect();
    let keys: Vec<String> = finals
        .iter()
        .filter(|e| e["type"] == "ok")
        .map(|e| e["key"].as_str().unwrap().to_string())
        .collect();
    let every: Vec<String> = (0..=busiest).map(|k| format!("k{k}")).collect();
    assert_eq!(keys.len(), every.len(), "{keys:?}");
    assert!(every.iter().all(|k| keys.contains(k)), "{keys:?}");
    assert_eq!(finals.len(), 2 * every.len(), "an invoke and an ok each");
    // Nothing answers the node's /digest or /stats on a fake: not converged, said so.
    assert_eq!(out.converged, Some(false));
    let c = &h[convergence]["value"]["detail"];
    assert_eq!(c["unreachable"].as_array().unwrap().len(), 5, "{c}");
    assert!(out.node_stats.values().all(|v| v["error"].is_string()));
}

#[tokio::test(start_paused = true)]
async fn a_fault_that_fails_ends_the_run_before_convergence_and_final_reads() {
    let (_stop_tx, stop) = watch::channel(false);
    let (out, h, fake) = drive_fake(&[Fault::Kill], &["kill"], stop).await;
    let e = format!("{:#}", out.unwrap_err());
    assert!(
        e.contains("the nemesis failed, so no verdict is given")
            && e.contains("kill could not be applied"),
        "{e}"
    );
    assert!(h
        .iter()
        .all(|e| e["f"] != "convergence" && !is_final_read(e)));
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
}

#[tokio::test(start_paused = true)]
async fn a_stop_request_skips_the_quiet_period_convergence_and_final_reads() {
    let (stop_tx, stop) = watch::channel(false);
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_secs(3)).await;
        stop_tx.send(true).unwrap();
        // Held until the run is over, so the stop flag stays where it was set.
        tokio::time::sleep(Duration::from_secs(3600)).await;
    });
    let (out, h, fake) = drive_fake(&[Fault::Partition], &[], stop).await;
    let out = out.unwrap();
    assert!(out.interrupted && out.converged.is_none(), "{out:?}");
    assert!(out.ok > 0, "{out:?}");
    assert!(h
        .iter()
        .all(|e| e["f"] != "convergence" && !is_final_read(e)));
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
}

#[tokio::test]
async fn a_last_heal_that_fails_is_the_runs_error_and_the_cluster_still_stops() {
    let fake = Arc::new(FakeCluster::new(3));
    heal_and_shut_down(fake.clone()).await.unwrap();
    assert_eq!(fake.calls(), ["heal", "shutdown"]);
    let fake = Arc::new(FakeCluster::new(3));
    fake.fail("heal");
    let e = heal_and_shut_down(fake.clone()).await.unwrap_err();
    assert!(
        e.to_string()
            .contains("healing the cluster before stopping it"),
        "{e}"
    );
    assert!(fake.is_shut_down());
    // A run that had already failed keeps its own error, with the heal's after it.
    let first: anyhow::Result<()> = Err(anyhow::anyhow!("the nemesis failed"));
    let both = crate::nemesis::keep_both(first, Err(e)).unwrap_err();
    assert!(
        both.to_string()
            .starts_with("the nemesis failed; then healing"),
        "{both}"
    );
}
