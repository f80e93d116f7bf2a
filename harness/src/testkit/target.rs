//! [`FakeTarget`]: a system under test that lives in [`super::FakeCluster`] and
//! [`super::FakeApi`]: nothing to launch, nothing to configure, clients answered from the map,
//! clocks moved on the fake cluster. With it the runner's phases run whole in a unit test.

use super::{FakeApi, FakeCluster};
use crate::backend::launch::{Launch, Member};
use crate::backend::{Cluster, ClusterSpec};
use crate::target::{Api, BoxFuture, Clock, Target};
use std::path::PathBuf;
use std::sync::Arc;

pub struct FakeTarget {
    pub api: Arc<FakeApi>,
    pub cluster: Arc<FakeCluster>,
}

impl FakeTarget {
    pub fn new(cluster: Arc<FakeCluster>) -> FakeTarget {
        FakeTarget {
            api: Arc::new(FakeApi::default()),
            cluster,
        }
    }
}

/// A launch that refuses: a fake cluster has no member to start.
struct NoLaunch;

impl Launch for NoLaunch {
    fn command(&self, m: &Member) -> std::io::Result<std::process::Command> {
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

    fn launch(&self, _spec: &ClusterSpec) -> Arc<dyn Launch> {
        Arc::new(NoLaunch)
    }

    fn configure<'a>(&'a self, _cluster: &'a dyn Cluster) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Keys are placed by the harness's copy of the node's ring, so faults aimed at a key's
    /// home nodes are exercised too.
    fn places_keys_by_ring(&self) -> bool {
        true
    }

    fn api(&self) -> Option<Arc<dyn Api>> {
        Some(self.api.clone())
    }

    fn clock(&self) -> Option<Arc<dyn Clock>> {
        Some(self.cluster.clone())
    }
}
