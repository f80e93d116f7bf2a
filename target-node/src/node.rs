//! The node: everything one process shares — config, ring, storage, replica client, clock,
//! counters — and the start-up that wires them and launches the background tasks.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::merkle::MerkleTree;
use crate::replica::Replicas;
use crate::ring::{Range, Ring};
use crate::stats::Stats;
use crate::storage::{Storage, StorageError};
use crate::version::Clock;

#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    #[error(transparent)]
    Storage(#[from] StorageError),
}

pub struct Node {
    pub cfg: Config,
    pub ring: Ring,
    /// `ring.ranges()`, computed once: the ring never changes while the node runs.
    pub ranges: Vec<Range>,
    /// This node's index on the ring.
    pub me: usize,
    pub storage: Arc<Storage>,
    pub replicas: Replicas,
    pub clock: Clock,
    pub stats: Stats,
    /// The last Merkle tree built for each peer, so one exchange's level-by-level requests
    /// answer from one snapshot instead of rebuilding per level. A level-0 request rebuilds.
    pub(crate) merkle_cache: Mutex<HashMap<usize, (Instant, Arc<MerkleTree>)>>,
}

impl Node {
    /// Opens storage and builds the ring. Background tasks start with `spawn_background`.
    pub fn open(cfg: Config) -> Result<Arc<Node>, NodeError> {
        let ids: Vec<String> = cfg.peers.keys().cloned().collect();
        let ring = Ring::new(&ids, cfg.vnodes, cfg.n);
        let me = ring
            .index_of(&cfg.id)
            .expect("validate() checked that --id is in --peers");
        let storage = Storage::open(&cfg.data_dir, cfg.fsync)?;
        let addrs = ring
            .nodes()
            .iter()
            .map(|id| cfg.peers.get(id).cloned().unwrap_or_default())
            .collect();
        let replicas = Replicas::new(
            addrs,
            me,
            storage.clone(),
            Duration::from_millis(cfg.replica_timeout_ms),
        );
        let clock = Clock::new(&cfg.id, cfg.clock_offset_ms);
        let ranges = ring.ranges();
        Ok(Arc::new(Node {
            cfg,
            ranges,
            ring,
            me,
            storage,
            replicas,
            clock,
            stats: Stats::default(),
            merkle_cache: Mutex::new(HashMap::new()),
        }))
    }

    /// Anti-entropy and hinted handoff, each on its own interval (0 = off).
    pub fn spawn_background(self: &Arc<Self>) {
        if self.cfg.anti_entropy_interval_ms > 0 {
            tokio::spawn(crate::anti_entropy::run(self.clone()));
        }
        if self.cfg.handoff_interval_ms > 0 {
            tokio::spawn(crate::hints::run(self.clone()));
        }
    }

    /// The home nodes of the range holding ring position `pos`.
    pub fn replicas_at(&self, pos: u64) -> &[usize] {
        &self.ranges[self.ring.range_index(pos)].replicas
    }

    pub fn id_of(&self, idx: usize) -> &str {
        self.ring.node_id(idx)
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.request_timeout_ms)
    }

    pub fn replica_timeout(&self) -> Duration {
        Duration::from_millis(self.cfg.replica_timeout_ms)
    }
}
