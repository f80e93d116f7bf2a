//! [`FakeTarget`]: a system under test that lives in memory: nothing to launch, nothing to
//! configure, clients answered by a [`FakeStore`], clocks moved on [`super::FakeCluster`],
//! keys placed by the node's ring (so faults aimed at a key's home nodes are exercised too).
//! With it the runner's phases run whole in a unit test.

use super::{FakeCluster, FakeStore};
use crate::backend::launch::{Launch, Member as Launched};
use crate::backend::Cluster;
use crate::targets::node::ring::Ring;
use crate::targets::{Api, BoxFuture, Clock, Membership, Placement, Target};
use std::path::PathBuf;
use std::sync::Arc;

pub struct FakeTarget {
    pub store: Arc<FakeStore>,
    pub cluster: Arc<FakeCluster>,
}

impl FakeTarget {
    pub fn new(cluster: Arc<FakeCluster>) -> FakeTarget {
        FakeTarget {
            store: Arc::new(FakeStore::default()),
            cluster,
        }
    }
}

/// A launch that refuses: a fake cluster has no member to start.
struct NoLaunch;

impl Launch for NoLaunch {
    fn command(&self, m: &Launched) -> std::io::Result<std::process::Command> {
        Err(std::io::Error::other(format!(
            "{}: a fake target's members are not processes",
            m.id
        )))
    }

    fn program(&self) -> PathBuf {
        PathBuf::from("fake-target")
    }
}

impl Target for FakeTarget {
    fn name(&self) -> &'static str {
        "fake"
    }

    fn launch(&self) -> Arc<dyn Launch> {
        Arc::new(NoLaunch)
    }

    fn configure<'a>(
        &'a self,
        _cluster: &'a dyn Cluster,
    ) -> BoxFuture<'a, anyhow::Result<Arc<dyn Api>>> {
        let api: Arc<dyn Api> = self.store.clone();
        Box::pin(async move { Ok(api) })
    }

    fn clock(&self) -> Arc<dyn Clock> {
        self.cluster.clone()
    }

    fn placement(&self, nodes: &[String]) -> Arc<dyn Placement> {
        Arc::new(Ring::new(nodes, 64, 3))
    }

    fn membership(&self) -> Option<Arc<dyn Membership>> {
        Some(self.cluster.clone())
    }
}
