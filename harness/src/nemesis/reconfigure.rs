//! `reconfigure`: membership changes, as Garage's own Jepsen campaign made them with its
//! `reconfigure-subset 3` nemesis. A window keeps a random subset of the members
//! (`--reconfigure-keep`, 3 by default; the seeded rng picks it) as storage members and makes
//! every other member a gateway (a role with no data: it still takes client requests and
//! forwards them), applied as one new layout version. Its stop makes every member a storage
//! member again, as another new version (Jepsen's `:stop` does the same), so the store moves
//! data both ways in every window.
//!
//! Each event records the layout before and after the change (version, storage members,
//! gateways) as the store reports it. At the end of the schedule [`settle`] makes sure every
//! member holds data and waits, bounded, until the store has finished moving it, so the final
//! reads see a layout where every key has all its replicas; it records `reconfigure-settle`.
//!
//! The target's [`crate::targets::Membership`] does the work; a target whose membership is
//! fixed (the node's ring) refuses the fault up front from its capabilities, and needs 5
//! members or more ([`check`]).

use super::{Active, Ctx};
use crate::targets::Layout;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The storage members a window keeps unless `--reconfigure-keep` says otherwise (Garage's
/// `reconfigure-subset 3`).
pub const DEFAULT_KEEP: usize = 3;
/// Membership changes need this many members or more (Garage's campaign: 5 to 7).
pub const MIN_MEMBERS: usize = 5;
/// How long the end of the schedule waits for the store to move its data to the final layout.
pub const SETTLE_LIMIT: Duration = Duration::from_secs(90);

/// Refuse, before anything starts, `reconfigure` in a cluster too small for it and a
/// `--reconfigure-keep` that keeps nobody or everybody. Pure: the run's validation calls it
/// with the flags alone (`keep`: `--reconfigure-keep` when given).
pub fn check(reconfigure: bool, nodes: usize, keep: Option<usize>) -> Result<usize, String> {
    if !reconfigure {
        return match keep {
            Some(k) => Err(format!(
                "--reconfigure-keep {k}: expected --nemesis to list reconfigure (it sets how \
                 many storage members a reconfigure window keeps)"
            )),
            None => Ok(DEFAULT_KEEP),
        };
    }
    if nodes < MIN_MEMBERS {
        return Err(format!(
            "--nemesis reconfigure with --nodes {nodes}: membership changes need {MIN_MEMBERS} \
             members or more (each window keeps {DEFAULT_KEEP} as storage members by default \
             and makes the others gateways, as Garage's own campaign did on 5 to 7 nodes); \
             expected --nodes {MIN_MEMBERS} or more"
        ));
    }
    let k = keep.unwrap_or(DEFAULT_KEEP);
    if k == 0 || k >= nodes {
        return Err(format!(
            "--reconfigure-keep {k} with --nodes {nodes}: expected 1 to {} (at least one \
             storage member kept, at least one made a gateway)",
            nodes - 1
        ));
    }
    Ok(k)
}

/// A layout as events record it.
fn layout_json(l: &Layout) -> Value {
    json!({"version": l.version, "storage": l.storage, "gateways": l.gateways})
}

/// Apply `storage` as the new layout and record `f` with the layout before and after. The
/// first call that fails ends the step: the event carries the error and what was known.
async fn change(ctx: &Ctx, f: &str, storage: Vec<String>) -> anyhow::Result<()> {
    let mut value = json!({"keep": storage});
    let Some(m) = ctx.membership.clone() else {
        let e = "the target gives no way to change its membership".to_string();
        ctx.rec.nemesis_error(f, value, &e);
        anyhow::bail!("{f}: {e}");
    };
    let cluster = ctx.cluster.clone();
    let t0 = Instant::now();
    let before = match m.layout(cluster.as_ref()).await {
        Ok(l) => l,
        Err(e) => {
            let e = format!("reading the layout: {e}");
            ctx.rec.nemesis_error(f, value, &e);
            anyhow::bail!("{f}: {e}");
        }
    };
    value["before"] = layout_json(&before);
    let assigned = m.assign(cluster.as_ref(), &storage).await;
    // The event is recorded when the change returns; this says when it began.
    value["took_ms"] = json!(t0.elapsed().as_millis() as u64);
    match assigned {
        Ok(after) => {
            value["after"] = layout_json(&after);
            tracing::info!(
                "nemesis: {f}: layout v{} -> v{}, storage {:?}, gateways {:?}",
                before.version,
                after.version,
                after.storage,
                after.gateways
            );
            ctx.rec.nemesis(f, value);
            Ok(())
        }
        Err(e) => {
            let e = format!("applying the layout: {e}");
            ctx.rec.nemesis_error(f, value, &e);
            anyhow::bail!("{f}: {e}")
        }
    }
}

/// Keep a random subset of `--reconfigure-keep` members as storage, the others gateways.
/// When the change fails, every member is made storage again (the undoing is recorded as
/// `reconfigure-stop`).
pub async fn start(ctx: &Ctx, rng: &mut ChaCha8Rng) -> anyhow::Result<Active> {
    let nodes = ctx.cluster.nodes().to_vec();
    let mut keep: Vec<String> = nodes
        .choose_multiple(rng, ctx.reconfigure_keep.min(nodes.len()))
        .cloned()
        .collect();
    keep.sort();
    if let Err(e) = change(ctx, "reconfigure-start", keep).await {
        let undone = stop(ctx).await;
        return Err(super::rolled_back(e, "reconfigure", undone));
    }
    Ok(Active::Reconfigure)
}

/// Every member a storage member again, as a new layout version.
pub async fn stop(ctx: &Ctx) -> anyhow::Result<()> {
    change(ctx, "reconfigure-stop", ctx.cluster.nodes().to_vec()).await
}

/// At the end of the schedule (after the final heal): every member a storage member (a new
/// version only if some are not), then a bounded wait until the store has moved its data to
/// that layout. Records `reconfigure-settle` with the layout, whether it settled and how long
/// that took. A store that has not settled in time is reported (warning and event), not an
/// error: the final reads then judge what it serves.
pub async fn settle(ctx: &Ctx, mut stop: watch::Receiver<bool>) -> anyhow::Result<()> {
    const F: &str = "reconfigure-settle";
    let Some(m) = ctx.membership.clone() else {
        let e = "the target gives no way to change its membership".to_string();
        ctx.rec.nemesis_error(F, Value::Null, &e);
        anyhow::bail!("{F}: {e}");
    };
    let cluster = ctx.cluster.clone();
    let all = ctx.cluster.nodes().to_vec();
    let layout = match m.assign(cluster.as_ref(), &all).await {
        Ok(l) => l,
        Err(e) => {
            let e = format!("making every member storage: {e}");
            ctx.rec.nemesis_error(F, Value::Null, &e);
            anyhow::bail!("{F}: {e}");
        }
    };
    let t0 = Instant::now();
    // A stop request (Ctrl-C) ends the wait at once.
    let waited = tokio::select! {
        w = m.settle(cluster.as_ref(), SETTLE_LIMIT) => w,
        _ = async {
            // A sender gone can never ask to stop: then only the wait ends it.
            if stop.wait_for(|s| *s).await.is_err() {
                std::future::pending::<()>().await;
            }
        } => Ok(Some("the run was stopped while waiting".to_string())),
    };
    let ms = t0.elapsed().as_millis() as u64;
    let mut value = json!({"layout": layout_json(&layout), "waited_ms": ms});
    match waited {
        Ok(None) => {
            value["settled"] = json!(true);
            ctx.rec.nemesis(F, value);
            Ok(())
        }
        Ok(Some(why)) => {
            tracing::warn!(
                "nemesis: the store had not moved its data to layout v{} after {} s: {why}",
                layout.version,
                SETTLE_LIMIT.as_secs()
            );
            value["settled"] = json!(false);
            value["why"] = json!(why);
            ctx.rec.nemesis(F, value);
            Ok(())
        }
        Err(e) => {
            let e = format!("waiting for the layout to settle: {e}");
            ctx.rec.nemesis_error(F, value, &e);
            anyhow::bail!("{F}: {e}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_few_members_and_a_bad_keep_are_refused_naming_the_flags() {
        let e = check(true, 3, None).unwrap_err();
        assert!(
            e.starts_with("--nemesis reconfigure with --nodes 3: membership changes need 5"),
            "{e}"
        );
        assert_eq!(check(true, 5, None), Ok(3));
        assert_eq!(check(true, 7, Some(2)), Ok(2));
        for k in [0, 5, 9] {
            let e = check(true, 5, Some(k)).unwrap_err();
            assert!(
                e.starts_with(&format!("--reconfigure-keep {k} with --nodes 5")),
                "{e}"
            );
        }
        let e = check(false, 5, Some(3)).unwrap_err();
        assert!(e.contains("expected --nemesis to list reconfigure"), "{e}");
        assert_eq!(check(false, 3, None), Ok(DEFAULT_KEEP));
    }
}
