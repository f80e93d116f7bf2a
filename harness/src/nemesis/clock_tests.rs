//! The clock modes against [`FakeCluster`] (its own [`Clock`], every `clock <id> <ms>` call
//! written down) under tokio's paused clock: the same seed sets the same offsets, magnitudes
//! stay in range, bumps add up and are reset by the end, a strobe stops by itself on true time.

use super::clock_skew::{self, ClockMode, Clocks};
use super::tests::{ctx, nemesis_events};
use super::*;
use crate::testkit::FakeCluster;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

fn clock_ctx(fake: &Arc<FakeCluster>, dir: &Path, modes: &[ClockMode]) -> Ctx {
    let mut c = ctx(fake, dir);
    c.clocks = Arc::new(Clocks::new(modes.to_vec(), None));
    c
}

/// The `clock` calls the fake saw, in order.
fn clock_calls(fake: &FakeCluster) -> Vec<String> {
    fake.calls()
        .into_iter()
        .filter(|c| c.starts_with("clock "))
        .collect()
}

/// A whole clock-skew schedule of `modes` (20 s of paused time): its events, its clock calls.
async fn schedule(modes: &[ClockMode], seed: u64) -> (Vec<(String, Value)>, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let nemesis = Nemesis {
        faults: vec![Fault::ClockSkew],
        interval: Duration::from_secs(2),
        seed,
        ctx: clock_ctx(&fake, dir.path(), modes),
    };
    let (_tx, stop) = watch::channel(false);
    let started = nemesis
        .run(Instant::now() + Duration::from_secs(20), stop)
        .await
        .unwrap();
    assert!(started >= 5, "{started} windows");
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
    let ev = nemesis_events(dir.path())
        .into_iter()
        .map(|(f, v, e)| {
            assert!(e.is_none(), "{f} {v}: {e:?}");
            (f, v)
        })
        .collect();
    (ev, clock_calls(&fake))
}

fn offsets(v: &Value) -> BTreeMap<String, i64> {
    serde_json::from_value(v["offsets_ms"].clone()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn the_same_seed_sets_the_same_offsets_and_every_clock_ends_true() {
    let all = [
        ClockMode::Skew,
        ClockMode::Bump,
        ClockMode::Strobe,
        ClockMode::Reset,
    ];
    let (ev, calls) = schedule(&all, 5).await;
    assert_eq!(schedule(&all, 5).await, (ev.clone(), calls.clone()));
    assert_ne!(
        schedule(&all, 6).await.1,
        calls,
        "another seed, other offsets"
    );
    let modes: std::collections::BTreeSet<&str> = ev
        .iter()
        .filter(|(f, _)| f == "clock-skew-start")
        .map(|(_, v)| v["mode"].as_str().unwrap())
        .collect();
    assert!(modes.len() >= 3, "20 s should draw most modes: {modes:?}");
    // The default is the ladder it always was: 2 to 5 s apart, centred on zero.
    let (ev, _) = schedule(&[ClockMode::Skew], 5).await;
    for (f, v) in &ev {
        let mut offs: Vec<i64> = offsets(v).into_values().collect();
        offs.sort();
        if f == "clock-skew-start" {
            let spacing = offs[1] - offs[0];
            assert!(
                (2000..=5000).contains(&spacing) && spacing % 1000 == 0,
                "{v}"
            );
            assert_eq!(offs, (-2..=2).map(|i| i * spacing).collect::<Vec<_>>());
        } else {
            assert_eq!((f.as_str(), offs), ("clock-skew-stop", vec![0; 5]));
        }
    }
}

#[tokio::test(start_paused = true)]
async fn bumps_stay_in_range_add_up_and_are_reset_at_the_end() {
    let mut rng = ChaCha8Rng::seed_from_u64(9);
    let (mut small, mut large) = (false, false);
    for _ in 0..2000 {
        let m = clock_skew::magnitude(clock_skew::JEPSEN_MS, &mut rng).abs();
        assert!((4..=262_144).contains(&m), "{m}");
        small |= m < 64;
        large |= m > 16_384;
    }
    assert!(small && large, "log-uniform reaches both ends");
    for _ in 0..200 {
        let m = clock_skew::magnitude((100, 150), &mut rng).abs();
        assert!((100..=150).contains(&m), "{m}");
    }

    let (ev, _) = schedule(&[ClockMode::Bump], 11).await;
    let mut now: BTreeMap<String, i64> = BTreeMap::new();
    for (f, v) in &ev {
        match f.as_str() {
            "clock-skew-start" => {
                let deltas: BTreeMap<String, i64> =
                    serde_json::from_value(v["deltas_ms"].clone()).unwrap();
                assert!(!deltas.is_empty(), "{v}");
                for (n, d) in &deltas {
                    assert!((4..=262_144).contains(&d.abs()), "{v}");
                    *now.entry(n.clone()).or_default() += d;
                }
                for (n, ms) in offsets(v) {
                    assert_eq!(now[&n], ms, "a bump adds to the bumps before it: {v}");
                }
            }
            // A bump holds past its window.
            "clock-skew-stop" => {
                assert!(offsets(v).is_empty(), "{v}");
                let held: BTreeMap<String, i64> =
                    serde_json::from_value(v["held_ms"].clone()).unwrap();
                now.retain(|_, ms| *ms != 0);
                assert_eq!(held, now, "{v}");
            }
            "clock-reset" => {
                assert_eq!(v["mode"], "reset");
                assert!(offsets(v).values().all(|ms| *ms == 0), "{v}");
                assert_eq!(
                    offsets(v).keys().collect::<Vec<_>>(),
                    now.keys().collect::<Vec<_>>()
                );
                now.clear();
            }
            other => panic!("{other}"),
        }
    }
    assert_eq!(ev.last().unwrap().0, "clock-reset", "the end resets bumps");
    assert!(now.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_strobe_is_bounded_stops_by_itself_and_ends_at_true_time() {
    for seed in 0..8 {
        let dir = tempfile::tempdir().unwrap();
        let fake = Arc::new(FakeCluster::new(5));
        let c = clock_ctx(&fake, dir.path(), &[ClockMode::Strobe]);
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let active = clock_skew::start(&c, &mut rng).await.unwrap();
        let ev = nemesis_events(dir.path());
        let v = &ev[0].1;
        assert_eq!(
            (ev[0].0.as_str(), &v["mode"]),
            ("clock-skew-start", &"strobe".into())
        );
        let planned = v["flips"].as_u64().unwrap();
        let period = v["period_ms"].as_u64().unwrap();
        let duration = v["duration_ms"].as_u64().unwrap();
        assert!(
            (4..=32).contains(&period) && (500..=3000).contains(&duration),
            "{v}"
        );
        assert!(
            planned <= strobe::MAX_FLIPS && planned * period <= duration.max(period),
            "{v}"
        );
        let members = offsets(v);
        // Well past its duration, with no stop: it has ended by itself, on true time.
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert!(
            fake.faulted().is_empty(),
            "seed {seed}: {:?}",
            fake.faulted()
        );
        let calls = clock_calls(&fake);
        for (n, ms) in &members {
            let mine: Vec<&String> = calls
                .iter()
                .filter(|c| c.split(' ').nth(1) == Some(n.as_str()))
                .collect();
            // Flips alternate between the member's offset and true time, ending on true time.
            assert_eq!(mine[0], &format!("clock {n} {ms}"));
            assert_eq!(mine.last().unwrap().as_str(), format!("clock {n} 0"));
            assert!(
                mine.len() as u64 <= planned + 1,
                "seed {seed}: {} calls",
                mine.len()
            );
            for pair in mine.windows(2) {
                assert_ne!(pair[0], pair[1], "seed {seed}: not a flip");
            }
        }
        let Active::ClockSkew(st) = active else {
            panic!("not a clock window")
        };
        clock_skew::stop(&c, st).await.unwrap();
        let ev = nemesis_events(dir.path());
        let flips = ev[1].1["flips"].as_u64().unwrap();
        assert!(
            flips >= 1 && flips <= planned,
            "seed {seed}: {flips} of {planned}"
        );
        assert!(offsets(&ev[1].1).values().all(|ms| *ms == 0));
    }
    // Stopped early, it ends at once, on true time.
    let dir = tempfile::tempdir().unwrap();
    let fake = Arc::new(FakeCluster::new(5));
    let c = clock_ctx(&fake, dir.path(), &[ClockMode::Strobe]);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let Active::ClockSkew(st) = clock_skew::start(&c, &mut rng).await.unwrap() else {
        panic!("not a clock window")
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    clock_skew::stop(&c, st).await.unwrap();
    let ev = nemesis_events(dir.path());
    assert!(ev[1].1["flips"].as_u64().unwrap() < ev[0].1["flips"].as_u64().unwrap());
    assert!(fake.faulted().is_empty(), "{:?}", fake.faulted());
}
