//! Partitions: which directed links to cut, as pure functions of the node list and the rng,
//! and the start/stop that apply them through the backend.
//!
//! Client links are never cut here: clients stand outside the network, as in Jepsen, and
//! keep talking to whichever side of a partition their node is on.

use super::{Active, Ctx, Fault};
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde_json::json;
use std::collections::BTreeSet;

/// The partition kinds a partition draws from unless `--partition-kinds` says otherwise (in
/// this order: a seed's schedule depends on it).
pub const KINDS: [&str; 6] = [
    "one",
    "halves",
    "majorities-ring",
    "bridge",
    "one-way",
    "home-nodes",
];

/// Jepsen's kinds that [`KINDS`] lacks, drawn only when `--partition-kinds` lists them (so the
/// default schedules stay as they were): `minority-third` (Jepsen's: the largest group smaller
/// than a third of the nodes cut off from the rest) and `majority` (Jepsen's name for a random
/// bisection, cut as [`halves`] is).
pub const EXTRA_KINDS: [&str; 2] = ["minority-third", "majority"];

/// Parse `--partition-kinds`: a comma list of [`KINDS`] and [`EXTRA_KINDS`], no kind twice,
/// kept in the order given (the order a seed draws from).
pub fn parse_kinds(s: &str) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let Some(&k) = KINDS.iter().chain(EXTRA_KINDS.iter()).find(|k| **k == part) else {
            return Err(format!(
                "--partition-kinds: unknown kind {part:?}; expected a comma list of {}, {}",
                KINDS.join(", "),
                EXTRA_KINDS.join(", ")
            ));
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    Ok(out)
}

/// Refuse, before anything starts, `--partition-kinds` without `partition` in `--nemesis`, or
/// a list none of whose kinds cuts a link among `nodes` members (placement unknown here, so
/// `home-nodes` counts as cutting: the run finds out). `None`: the default [`KINDS`].
pub fn check_kinds(
    given: Option<&str>,
    partition: bool,
    nodes: usize,
) -> Result<Vec<&'static str>, String> {
    let Some(s) = given else {
        return Ok(KINDS.to_vec());
    };
    if !partition {
        return Err(format!(
            "--partition-kinds {s}: expected --nemesis to list partition (it sets which kinds a \
             partition draws from)"
        ));
    }
    let kinds = parse_kinds(s)?;
    if kinds_among(&kinds, nodes, nodes.saturating_sub(1)).is_empty() {
        return Err(format!(
            "--partition-kinds {s} with --nodes {nodes}: no kind listed cuts a link among \
             {nodes} members (minority-third needs 4 or more, majorities-ring 4, bridge 3); \
             expected more kinds or more nodes"
        ));
    }
    Ok(kinds)
}

type Links = Vec<(String, String)>;

/// Cut every link between the two groups, both ways.
fn between(a: &[String], b: &[String]) -> Links {
    let mut out = Vec::new();
    for x in a {
        for y in b {
            out.push((x.clone(), y.clone()));
            out.push((y.clone(), x.clone()));
        }
    }
    out.sort();
    out
}

/// One node isolated from the rest.
pub fn one(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let x = nodes.choose(rng).expect("nodes").clone();
    isolate(nodes, &x)
}

/// `x` isolated from the rest.
pub fn isolate(nodes: &[String], x: &str) -> Links {
    let rest: Vec<String> = nodes.iter().filter(|n| *n != x).cloned().collect();
    between(&[x.to_string()], &rest)
}

/// Jepsen's `minority-third`: the largest group smaller than a third of the nodes
/// (`(n - 1) / 3`), drawn at random, cut off from the rest; nothing on 3 nodes or fewer.
pub fn minority_third(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let mut v = nodes.to_vec();
    v.shuffle(rng);
    let (a, b) = v.split_at((nodes.len().saturating_sub(1)) / 3);
    between(a, b)
}

/// Random halves (the smaller half first).
pub fn halves(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let mut v = nodes.to_vec();
    v.shuffle(rng);
    let (a, b) = v.split_at(nodes.len() / 2);
    between(a, b)
}

/// Each node sees a majority (itself and its nearest ring neighbours), no two the same:
/// links between nodes further apart on a shuffled ring are cut.
pub fn majorities_ring(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let mut v = nodes.to_vec();
    v.shuffle(rng);
    let n = v.len();
    // Itself plus `reach` neighbours each side must make a majority.
    let majority = n / 2 + 1;
    let reach = (majority - 1).div_ceil(2).max(1);
    let mut out = Vec::new();
    for i in 0..n {
        for j in 0..n {
            let d = (i + n - j) % n;
            let d = d.min(n - d);
            if i != j && d > reach {
                out.push((v[i].clone(), v[j].clone()));
            }
        }
    }
    out.sort();
    out
}

/// Two halves with one node (the bridge) that still sees both.
pub fn bridge(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let mut v = nodes.to_vec();
    v.shuffle(rng);
    // The last node is the bridge: it is in neither half, so none of its links are cut.
    v.pop().expect("nodes");
    let (a, b) = v.split_at(v.len() / 2);
    between(a, b)
}

/// One node cannot send to the others (or cannot hear them), the other way still works.
pub fn one_way(nodes: &[String], rng: &mut ChaCha8Rng) -> Links {
    let x = nodes.choose(rng).expect("nodes").clone();
    let outgoing = rng.gen_bool(0.5);
    let mut out: Links = nodes
        .iter()
        .filter(|n| **n != x)
        .map(|n| {
            if outgoing {
                (x.clone(), n.clone())
            } else {
                (n.clone(), x.clone())
            }
        })
        .collect();
    out.sort();
    out
}

/// The busy key's home nodes cut off from the rest (what sloppy quorums live on).
pub fn home_nodes(nodes: &[String], home: &[String]) -> Links {
    let home_set: BTreeSet<&String> = home.iter().collect();
    let rest: Vec<String> = nodes
        .iter()
        .filter(|n| !home_set.contains(n))
        .cloned()
        .collect();
    between(home, &rest)
}

/// Apply `links` and record `partition-start` with the links actually cut. The first link
/// that cannot be cut ends the step: the event then carries the error, and the error is
/// returned (the nemesis heals).
pub async fn apply(
    ctx: &Ctx,
    kind: &str,
    links: Links,
    extra: Option<serde_json::Value>,
) -> anyhow::Result<()> {
    let notes = extra.map(|k| ("key", k)).into_iter().collect();
    apply_noted(ctx, kind, links, notes).await
}

/// [`apply`], with `notes` (field, value) added to the `partition-start` event: the busy key
/// of a home-nodes cut, the leader a `one` cut isolated.
pub async fn apply_noted(
    ctx: &Ctx,
    kind: &str,
    links: Links,
    notes: Vec<(&str, serde_json::Value)>,
) -> anyhow::Result<()> {
    let l2 = links.clone();
    let (applied, err) = ctx
        .blocking(move |c| {
            let mut applied = Vec::new();
            for (a, b) in l2 {
                if let Err(e) = c.drop_traffic(&a, &b) {
                    return (applied, Some(format!("cut {a} -> {b}: {e}")));
                }
                applied.push([a, b]);
            }
            (applied, None)
        })
        .await;
    let mut value = json!({"kind": kind, "drop": applied});
    for (field, v) in notes {
        value[field] = v;
    }
    // A partition that cuts nothing did not happen, whatever the rules up front let through.
    let err = err.or_else(|| {
        value["drop"]
            .as_array()
            .is_some_and(|d| d.is_empty())
            .then(|| {
                format!(
                    "{kind} cuts no link among {} nodes",
                    ctx.cluster.nodes().len()
                )
            })
    });
    match err {
        None => {
            ctx.rec.nemesis("partition-start", value);
            Ok(())
        }
        Some(e) => {
            ctx.rec.nemesis_error("partition-start", value, &e);
            anyhow::bail!("partition {kind}: {e}")
        }
    }
}

/// The kinds that cut something in this cluster: every kind needs two nodes, bridge three
/// (on two, one node is the bridge and the other is both halves), majorities-ring 4 or more
/// (with 3, each node's nearest neighbours are all of them), and home-nodes needs homes that
/// are not the whole cluster (`homes`: how many the busy key has; 0 when placement is unknown).
pub fn kinds_for(nodes: usize, homes: usize) -> Vec<&'static str> {
    kinds_among(&KINDS, nodes, homes)
}

/// The kinds of `kinds` (in their order) that cut something in this cluster (see
/// [`kinds_for`]; `minority-third` needs 4 nodes or more).
pub fn kinds_among(kinds: &[&'static str], nodes: usize, homes: usize) -> Vec<&'static str> {
    kinds
        .iter()
        .copied()
        .filter(|k| match *k {
            "majorities-ring" | "minority-third" => nodes >= 4,
            "home-nodes" => homes > 0 && homes < nodes,
            "bridge" => nodes >= 3,
            _ => nodes >= 2,
        })
        .collect()
}

/// The faults that act on links between nodes (cut, delay, reset them), and so do nothing at
/// all in a cluster of one.
const LINK_FAULTS: [Fault; 3] = [Fault::Partition, Fault::Slow, Fault::Flaky];

/// Refuse, before anything starts, a `--nemesis` list with a link fault in a cluster that has
/// no link for it (`--nodes 1`): its events would say it was applied when nothing was cut,
/// delayed or reset. Pure, so the run's validation calls it with the flags alone.
pub fn check_links(faults: &[Fault], nodes: usize) -> Result<(), String> {
    if !kinds_for(nodes, 0).is_empty() {
        return Ok(());
    }
    match faults.iter().find(|f| LINK_FAULTS.contains(f)) {
        None => Ok(()),
        Some(f) => Err(format!(
            "--nemesis {f} with --nodes {nodes}: a single node has no link to {verb}, so the \
             fault would be recorded over nothing; expected --nodes 2 or more, or a --nemesis \
             list without partition, slow and flaky",
            f = f.name(),
            verb = match f {
                Fault::Partition => "cut",
                Fault::Slow => "delay",
                _ => "reset",
            },
        )),
    }
}

pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = ctx.cluster.nodes().to_vec();
    let busy = ctx.busy_key();
    let home = ctx.home_nodes(&busy);
    let Some(&kind) = kinds_among(&ctx.partition_kinds, nodes.len(), home.len()).choose(rng) else {
        let e = format!("no partition kind cuts a link among {} nodes", nodes.len());
        ctx.rec
            .nemesis_error("partition-start", json!({"drop": []}), &e);
        anyhow::bail!("partition-start: {e}");
    };
    let mut notes = Vec::new();
    let links = match kind {
        "one" => {
            // A target with a leader has it isolated half the time (no draw for one without).
            let aimed = super::aim_at_leader(ctx, rng).await;
            notes.extend(super::aim_notes(&aimed));
            match aimed {
                Some(Ok(leader)) => isolate(&nodes, &leader),
                _ => one(&nodes, rng),
            }
        }
        "halves" => halves(&nodes, rng),
        "majorities-ring" => majorities_ring(&nodes, rng),
        "bridge" => bridge(&nodes, rng),
        "one-way" => one_way(&nodes, rng),
        "minority-third" => minority_third(&nodes, rng),
        "majority" => halves(&nodes, rng),
        _ => {
            notes.push(("key", json!(busy)));
            home_nodes(&nodes, &home)
        }
    };
    apply_noted(ctx, kind, links, notes).await?;
    Ok(Active::Partition)
}

/// Heal every link and record `partition-stop` (with the error when healing failed).
pub async fn stop(ctx: &Ctx) -> anyhow::Result<()> {
    match ctx.blocking(|c| c.heal()).await {
        Ok(()) => {
            ctx.rec.nemesis("partition-stop", serde_json::Value::Null);
            Ok(())
        }
        Err(e) => {
            let e = format!("heal: {e}");
            ctx.rec
                .nemesis_error("partition-stop", serde_json::Value::Null, &e);
            anyhow::bail!("partition-stop: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn ids(n: usize) -> Vec<String> {
        (1..=n).map(|i| format!("n{i}")).collect()
    }

    #[test]
    fn every_kind_chosen_cuts_a_link() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        for n in 3..=7 {
            let nodes = ids(n);
            for homes in [0, 3, n] {
                let kinds = kinds_for(n, homes);
                assert!(kinds.contains(&"one") && kinds.contains(&"halves"));
                assert_eq!(
                    kinds.contains(&"home-nodes"),
                    homes == 3 && n > 3,
                    "{n} {homes}"
                );
                for kind in kinds {
                    let cut = match kind {
                        "one" => one(&nodes, &mut rng),
                        "halves" => halves(&nodes, &mut rng),
                        "majorities-ring" => majorities_ring(&nodes, &mut rng),
                        "bridge" => bridge(&nodes, &mut rng),
                        "one-way" => one_way(&nodes, &mut rng),
                        _ => home_nodes(&nodes, &nodes[..homes]),
                    };
                    assert!(
                        !cut.is_empty(),
                        "{kind} on {n} nodes ({homes} homes) cuts nothing"
                    );
                }
            }
        }
    }

    #[test]
    fn no_kind_that_cuts_nothing_is_chosen_and_one_node_is_refused() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        // Two nodes: bridge would leave one node as the bridge and nothing to cut.
        assert!(bridge(&ids(2), &mut rng).is_empty());
        assert!(!kinds_for(2, 0).contains(&"bridge"));
        assert_eq!(kinds_for(2, 0), ["one", "halves", "one-way"]);
        for kind in kinds_for(2, 0) {
            let cut = match kind {
                "one" => one(&ids(2), &mut rng),
                "halves" => halves(&ids(2), &mut rng),
                _ => one_way(&ids(2), &mut rng),
            };
            assert!(!cut.is_empty(), "{kind} on 2 nodes cuts nothing");
        }
        // One node: nothing to cut, delay or reset; refused naming the flags.
        assert!(kinds_for(1, 1).is_empty());
        for f in [Fault::Partition, Fault::Slow, Fault::Flaky] {
            let e = check_links(&[Fault::Kill, f], 1).unwrap_err();
            assert!(
                e.starts_with(&format!("--nemesis {} with --nodes 1", f.name())),
                "{e}"
            );
        }
        check_links(&[Fault::Kill, Fault::Pause, Fault::ClockSkew], 1).unwrap();
        check_links(&[Fault::Partition, Fault::Slow, Fault::Flaky], 2).unwrap();
    }

    #[test]
    fn jepsens_minority_third_and_majority_cut_what_jepsen_cuts() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for (n, cut_off) in [(4, 1), (5, 1), (6, 1), (7, 2), (9, 2), (10, 3)] {
            let cut = minority_third(&ids(n), &mut rng);
            // Both ways between the small group and the rest.
            assert_eq!(cut.len(), 2 * cut_off * (n - cut_off), "{n} nodes");
        }
        assert!(minority_third(&ids(3), &mut rng).is_empty());
        assert_eq!(
            kinds_among(&["minority-third", "one"], 3, 0),
            ["one"],
            "3 nodes never draw minority-third"
        );
        // `majority` is a bisection: halves' cut, under Jepsen's name.
        let a = halves(&ids(5), &mut ChaCha8Rng::seed_from_u64(9));
        assert_eq!(a.len(), 2 * 2 * 3);
        // The default list is the six kinds as before, in their order, so seeds keep their
        // schedules; the extra kinds come only when asked for.
        assert_eq!(check_kinds(None, true, 5).unwrap(), KINDS);
        assert_eq!(
            check_kinds(Some("one,minority-third,majority,majorities-ring"), true, 5).unwrap(),
            ["one", "minority-third", "majority", "majorities-ring"]
        );
        let e = check_kinds(Some("one,wedge"), true, 5).unwrap_err();
        assert!(
            e.starts_with("--partition-kinds: unknown kind \"wedge\""),
            "{e}"
        );
        let e = check_kinds(Some("one"), false, 5).unwrap_err();
        assert!(e.contains("expected --nemesis to list partition"), "{e}");
        let e = check_kinds(Some("minority-third"), true, 3).unwrap_err();
        assert!(
            e.starts_with("--partition-kinds minority-third with --nodes 3"),
            "{e}"
        );
    }

    #[test]
    fn majorities_ring_leaves_each_node_a_majority() {
        let nodes = ids(5);
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let cut = majorities_ring(&nodes, &mut rng);
        for x in &nodes {
            let unreachable = cut.iter().filter(|(a, _)| a == x).count();
            assert_eq!(5 - 1 - unreachable + 1, 3, "{x} sees a majority of 3");
        }
    }

    #[test]
    fn one_way_is_one_way() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let cut = one_way(&ids(5), &mut rng);
        assert_eq!(cut.len(), 4);
        for (a, b) in &cut {
            assert!(!cut.contains(&(b.clone(), a.clone())));
        }
    }

    #[test]
    fn bridge_node_sees_everyone() {
        let nodes = ids(5);
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let cut = bridge(&nodes, &mut rng);
        let touched: BTreeSet<&String> = cut.iter().flat_map(|(a, b)| [a, b]).collect();
        assert_eq!(touched.len(), 4);
        assert_eq!(cut.len(), 8);
    }
}
