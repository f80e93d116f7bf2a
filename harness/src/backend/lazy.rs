//! The members' lazyfs mounts (the `power-loss` fault), kept by both backends alike: with
//! [`ClusterSpec::power_loss`], each member's data directory `data/<id>/` is a lazyfs mount
//! ([`crate::lazyfs`]) over `durable/<id>/` (what survives a cut), served by its own
//! `quorate lazyfs` process (log: `nodes/<id>.lazyfs.log`). Without it, nothing is mounted
//! and data directories are plain directories.

use super::{BackendError, ClusterSpec, Result};
use crate::lazyfs::model::Unsynced;
use crate::lazyfs::mount::{self, Mount};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

pub(crate) struct Mounts {
    run_dir: PathBuf,
    mounts: Mutex<BTreeMap<String, Mount>>,
}

impl Mounts {
    /// Mount every member's data directory when the spec asks for power loss (after sweeping
    /// the mounts of dead runs); otherwise hold nothing.
    pub(crate) fn start(spec: &ClusterSpec) -> Result<Mounts> {
        let m = Mounts {
            run_dir: spec.run_dir.clone(),
            mounts: Mutex::new(BTreeMap::new()),
        };
        if !spec.power_loss {
            return Ok(m);
        }
        let swept = mount::sweep_stale();
        if !swept.is_empty() {
            tracing::info!(?swept, "lazyfs: unmounted leftovers of dead runs");
        }
        for id in &spec.nodes {
            let started = m.mount(id)?;
            m.mounts.lock().unwrap().insert(id.clone(), started);
        }
        Ok(m)
    }

    fn mount(&self, id: &str) -> Result<Mount> {
        let backing = self.run_dir.join("durable").join(id);
        let at = self.run_dir.join("data").join(id);
        let log = self.run_dir.join("nodes").join(format!("{id}.lazyfs.log"));
        Mount::start(&backing, &at, &log).map_err(|e| BackendError::node(id, e))
    }

    /// Cut the power of a member's data directory (the member must be dead): what was not
    /// durable is dropped, and the directory is mounted again over what was.
    pub(crate) fn cut(&self, id: &str) -> Result<Unsynced> {
        let mut mounts = self.mounts.lock().unwrap();
        let Some(m) = mounts.get_mut(id) else {
            return Err(BackendError::Unsupported(format!(
                "power loss on {id}: its data directory is not a lazyfs mount (the cluster was \
                 started without ClusterSpec::power_loss)"
            )));
        };
        let dropped = m.cut().map_err(|e| BackendError::node(id, e))?;
        mounts.remove(id);
        let again = self.mount(id)?;
        mounts.insert(id.to_string(), again);
        Ok(dropped)
    }

    /// Make everything written so far durable on every mount (after the target's set-up).
    pub(crate) fn checkpoint(&self) -> Result<()> {
        let mut mounts = self.mounts.lock().unwrap();
        for (id, m) in mounts.iter_mut() {
            let was = m.sync().map_err(|e| BackendError::node(id, e))?;
            tracing::info!(node = %id, bytes = was.bytes, metadata_ops = was.metadata_ops, "lazyfs: checkpoint after set-up");
        }
        Ok(())
    }

    /// The server of a member's mount (tests check that none is left).
    pub(crate) fn server_pid(&self, id: &str) -> Option<u32> {
        self.mounts.lock().unwrap().get(id).and_then(Mount::pid)
    }

    /// Stop every server cleanly (what is unsynced is kept) and unmount. Idempotent; call
    /// once the members are dead.
    pub(crate) fn stop_all(&self) {
        let taken = std::mem::take(&mut *self.mounts.lock().unwrap());
        for (_, mut m) in taken {
            m.stop();
        }
    }
}
