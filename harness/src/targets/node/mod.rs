//! The reference node as a [`Target`]: started with its flags, ready as soon as every node
//! answers `/health`, spoken to over its own HTTP API (in [`crate::client`]), its clock moved
//! by its admin call (in [`crate::nemesis::clock_skew`]), its replicas compared by `/digest`.
//! Nothing here changes what the harness did before targets existed.

use super::{Api, BoxFuture, Clock, Target};
use crate::backend::launch::{Launch, NodeLaunch};
use crate::backend::{Cluster, ClusterSpec};
use std::sync::Arc;

/// `--target node`.
#[derive(Debug, Clone, Copy)]
pub struct NodeTarget;

impl Target for NodeTarget {
    fn name(&self) -> &'static str {
        "node"
    }

    fn launch(&self, spec: &ClusterSpec) -> Arc<dyn Launch> {
        Arc::new(NodeLaunch {
            bin: spec.node_bin.clone(),
            args: spec.node_args.clone(),
        })
    }

    /// Nodes need no joining: each knows the cluster from `--peers`.
    fn configure<'a>(&'a self, _cluster: &'a dyn Cluster) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    fn api(&self) -> Option<Arc<dyn Api>> {
        None
    }

    fn clock(&self) -> Option<Arc<dyn Clock>> {
        None
    }

    fn places_keys_by_ring(&self) -> bool {
        true
    }
}
