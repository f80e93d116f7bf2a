//! Slow links: delay (with jitter) on the links around the busy key.
//!
//! Where the target's key placement is known (the node), every link **into one home node**
//! X of the busy key. Aimed at the window a partial quorum lives in: a write is acknowledged
//! once W replicas answer, and the replica behind the slow links gets it `delay` later, so a
//! read that reaches it (and too few others) meanwhile can miss an acknowledged write. The
//! links are those other nodes dial to reach X (`n→X` for every other node `n`):
//! coordinators' replica calls to X, requests and responses both, are delayed; X's own calls
//! out are not.
//!
//! Where it is not (a third-party target such as Garage), the **uplinks of a minority** of
//! the members: every link out of each of `(n − 1) / 2` members (at least one), each link
//! with its own delay drawn in `[0, 2 × delay]`. Aimed at the window strict quorums without
//! a blocking write-back leave: a slow member's write lands at once on itself (or on the
//! replica its quick link reaches) and on the other replicas only after its slow links, so
//! readers that ask that replica see the new value while readers that ask only the others
//! still read the one before. With clock skew composed (see [`super`]), a member whose clock
//! runs ahead stamps that value above the writes made meanwhile, and it wins once it lands.
//!
//! Client links are left alone, as partitions leave them (clients stand outside the
//! network).
//!
//! Jitter as netem does it: each link's delay is redrawn uniformly in
//! `[base − jitter, base + jitter]` (at least 0) every [`REDRAW`], from a stream seeded by
//! the schedule's rng, so the schedule itself does not shift with how many redraws happened.
//! The proxy delays each chunk it forwards; a redraw applies to the chunks after it.
//!
//! Clients are held on the busy key from start to stop ([`crate::client::KeyPin`]), as for
//! stale-restore: keys rotate faster than a fault window, and the delay matters only on the
//! key it is aimed at.

use super::{Active, Ctx};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How often each slow link's delay is redrawn.
pub const REDRAW: Duration = Duration::from_millis(10);

/// A slowed link: from, to, and the delay its jitter is drawn around.
type SlowLink = (String, String, Duration);

pub struct State {
    links: Vec<SlowLink>,
    value: Value,
    stop: watch::Sender<bool>,
    /// The jitter task; returns the first error it met redrawing a delay.
    task: Option<JoinHandle<Option<String>>>,
}

/// Links into `x` from every other node, sorted.
pub fn links_into(nodes: &[String], x: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = nodes
        .iter()
        .filter(|n| n.as_str() != x)
        .map(|n| (n.clone(), x.to_string()))
        .collect();
    out.sort();
    out
}

/// Links out of each node of `slow` to every other node, sorted.
pub fn links_out_of(nodes: &[String], slow: &[String]) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = slow
        .iter()
        .flat_map(|x| {
            nodes
                .iter()
                .filter(move |n| *n != x)
                .map(move |n| (x.clone(), n.clone()))
        })
        .collect();
    out.sort();
    out
}

/// A slow link's own delay: `delay` scaled by a factor drawn uniformly in [0, 2].
pub fn scaled(delay: Duration, rng: &mut ChaCha8Rng) -> Duration {
    delay.mul_f64(rng.gen_range(0.0..=2.0))
}

/// A delay drawn uniformly in `[delay − jitter, delay + jitter]`, at least zero.
pub fn draw(delay: Duration, jitter: Duration, rng: &mut ChaCha8Rng) -> Duration {
    if jitter.is_zero() {
        return delay;
    }
    let lo = delay.saturating_sub(jitter);
    let hi = delay + jitter;
    Duration::from_micros(rng.gen_range(lo.as_micros() as u64..=hi.as_micros() as u64))
}

fn pairs(links: &[SlowLink]) -> Vec<[&String; 2]> {
    links.iter().map(|(a, b, _)| [a, b]).collect()
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = ctx.cluster.nodes().to_vec();
    let key_index = ctx.busy_key.load(Ordering::Relaxed);
    ctx.pin.set(key_index);
    let key = quorate_workloads::key_name(key_index);
    let home = ctx.home_nodes(&key);
    let cfg = ctx.link_faults;
    let (links, slowed): (Vec<SlowLink>, _) = if home.is_empty() {
        // Where the key lives is not known (a third-party target): slow what every replica
        // does instead — a minority of members has slow uplinks.
        let mut order = nodes.clone();
        order.shuffle(rng);
        let k = ((nodes.len() - 1) / 2).max(1);
        let mut slow: Vec<String> = order.into_iter().take(k).collect();
        slow.sort();
        // Each slow uplink gets its own delay: links slow by different amounts are what lets
        // a write reach one replica long before the others.
        let links: Vec<SlowLink> = links_out_of(&nodes, &slow)
            .into_iter()
            .map(|(a, b)| (a, b, scaled(cfg.delay, rng)))
            .collect();
        let per_link: Vec<Value> = links
            .iter()
            .map(|(a, b, d)| json!([a, b, d.as_millis() as u64]))
            .collect();
        (
            links,
            json!({ "uplinks_of": slow, "link_delays_ms": per_link }),
        )
    } else {
        let x = home.choose(rng).expect("a key has home nodes").clone();
        let links = links_into(&nodes, &x)
            .into_iter()
            .map(|(a, b)| (a, b, cfg.delay))
            .collect();
        (links, json!({ "node": x }))
    };
    let mut value = json!({
        "links": pairs(&links),
        "delay_ms": cfg.delay.as_millis() as u64,
        "jitter_ms": cfg.jitter.as_millis() as u64,
        "key": key,
    });
    if let (Some(v), Some(extra)) = (value.as_object_mut(), slowed.as_object()) {
        v.extend(extra.clone());
    }
    let jitter = cfg.jitter;
    let mut redraws = ChaCha8Rng::seed_from_u64(rng.gen());
    let l2 = links.clone();
    let applied = ctx
        .blocking(move |c| {
            for (a, b, base) in &l2 {
                let d = draw(*base, jitter, &mut redraws);
                if let Err(e) = c.delay_traffic(a, b, d) {
                    return Err(format!("delay {a} -> {b}: {e}"));
                }
            }
            Ok(redraws)
        })
        .await;
    let redraws = match applied {
        Ok(r) => r,
        Err(e) => {
            // Undo what was applied (the schedule's final heal clears the rest) before the
            // event is recorded, so that the event says whether the undoing failed too: it
            // records no event of its own.
            let undone = undo(ctx, links).await;
            ctx.pin.clear();
            let e = match undone {
                Ok(()) => e,
                Err(u) => format!("{e}; undoing the partly applied slow failed too: {u}"),
            };
            ctx.rec.nemesis_error("slow-start", value, &e);
            anyhow::bail!("slow-start: {e}");
        }
    };
    ctx.rec.nemesis("slow-start", value.clone());
    let (stop, stopped) = watch::channel(false);
    let task = (!jitter.is_zero())
        .then(|| tokio::spawn(redraw(ctx.clone(), links.clone(), redraws, stopped)));
    Ok(Active::Slow(State {
        links,
        value,
        stop,
        task,
    }))
}

/// Redraw every link's delay around its base each [`REDRAW`] until told to stop; the first
/// failure ends it.
async fn redraw(
    ctx: Ctx,
    links: Vec<SlowLink>,
    mut rng: ChaCha8Rng,
    mut stop: watch::Receiver<bool>,
) -> Option<String> {
    let jitter = ctx.link_faults.jitter;
    let mut tick = tokio::time::interval(REDRAW);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Bounded by the stop signal, which `stop` always sends (and by the task's abort if the
    // nemesis itself is dropped).
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return None,
        }
        if *stop.borrow() {
            return None;
        }
        for (a, b, base) in &links {
            let d = draw(*base, jitter, &mut rng);
            // A proxy rule change is a lock and a watch send: quick enough for a worker.
            if let Err(e) = ctx.cluster.delay_traffic(a, b, d) {
                return Some(format!("redraw the delay of {a} -> {b}: {e}"));
            }
        }
    }
}

async fn undo(ctx: &Ctx, links: Vec<SlowLink>) -> Result<(), String> {
    ctx.blocking(move |c| {
        let mut errors = Vec::new();
        for (a, b, _) in &links {
            if let Err(e) = c.delay_traffic(a, b, Duration::ZERO) {
                errors.push(format!("undelay {a} -> {b}: {e}"));
            }
        }
        super::joined(&errors).map_or(Ok(()), Err)
    })
    .await
}

/// Stop redrawing, take every delay off, release the clients, record `slow-stop`.
pub async fn stop(ctx: &Ctx, st: State) -> anyhow::Result<()> {
    let _ = st.stop.send(true);
    let redraw_error = match st.task {
        Some(t) => t
            .await
            .unwrap_or_else(|e| Some(format!("jitter task: {e}"))),
        None => None,
    };
    let undone = undo(ctx, st.links).await;
    ctx.pin.clear();
    let errors: Vec<String> = redraw_error.into_iter().chain(undone.err()).collect();
    match super::joined(&errors) {
        None => {
            ctx.rec.nemesis("slow-stop", st.value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error("slow-stop", st.value, &e);
            anyhow::bail!("slow-stop: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uplinks_of_the_slow_nodes_reach_every_other_node() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let slow = ["n2".to_string(), "n4".to_string()];
        let l = links_out_of(&nodes, &slow);
        assert_eq!(l.len(), 8);
        assert!(l.iter().all(|(a, b)| slow.contains(a) && a != b));
        assert!(l.contains(&("n2".into(), "n4".into())) && l.contains(&("n4".into(), "n2".into())));
    }

    #[test]
    fn links_into_one_node_from_every_other() {
        let nodes: Vec<String> = (1..=5).map(|i| format!("n{i}")).collect();
        let l = links_into(&nodes, "n3");
        assert_eq!(l.len(), 4);
        assert!(l.iter().all(|(a, b)| b == "n3" && a != "n3"));
    }

    #[test]
    fn draws_stay_within_delay_plus_minus_jitter_and_vary() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (d, j) = (Duration::from_millis(50), Duration::from_millis(20));
        let draws: Vec<Duration> = (0..1000).map(|_| draw(d, j, &mut rng)).collect();
        assert!(draws.iter().all(|x| *x >= d - j && *x <= d + j));
        assert!(draws.iter().any(|x| *x < d) && draws.iter().any(|x| *x > d));
        // No jitter: exactly the delay; jitter above the delay: never below zero.
        assert_eq!(draw(d, Duration::ZERO, &mut rng), d);
        let small = draw(Duration::from_millis(5), j, &mut rng);
        assert!(small <= Duration::from_millis(25));
    }
}
