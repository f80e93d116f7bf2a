//! Durable storage: redb on disk, an in-memory view for reads, one writer thread.
//!
//! Every change goes through a single writer thread that takes whatever jobs are queued,
//! applies them in one redb transaction and commits once (group commit): with `--fsync always`
//! one fsync covers a whole batch, so throughput does not collapse to one write per fsync.
//! The in-memory map is updated only *after* the commit returns, and replicas answer reads from
//! it, so a replica never reports (or acknowledges) a version it could lose to a SIGKILL.
//! That is what ABD's "acknowledged only after durable storage" needs.
//!
//! With `--fsync never` a change is published to memory at once (readers see it, the caller
//! has its answer) and handed to the writer thread, which persists it behind with redb's
//! non-durable commits (no fsync; a crash may roll back to the last durable commit — what
//! `never` already allowed: a SIGKILL may lose acknowledged writes). The decision (newer or
//! not) is made against memory under its lock, and the job is queued under the same lock, so
//! the writer persists changes in the order memory took them; it lets `PERSIST_GATHER` of them
//! accumulate per commit, and makes every `DURABLE_EVERY_GATHERED`th commit durable so redb
//! can reclaim pages, which it cannot do across non-durable commits alone. `--fsync always` is
//! unchanged: publish and acknowledge after the fsync, one fsync per batch (group commit).
//!
//! Hints (sloppy quorum) live in their own table and map, apart from the data, so they never
//! enter Merkle trees or digests of the node's own key ranges.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, RwLock};

use redb::{Database, Durability, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use crate::config::Fsync;
use crate::version::{Record, Version};

const DATA: TableDefinition<&str, &[u8]> = TableDefinition::new("data");
const HINTS: TableDefinition<&str, &[u8]> = TableDefinition::new("hints");
const MAX_BATCH: usize = 1024;
/// `--fsync never`: how long the writer lets published changes gather before persisting
/// them, and the most it takes in one commit.
const PERSIST_GATHER: std::time::Duration = std::time::Duration::from_millis(50);
/// `--fsync never`: a durable commit every this many gathered batches (under steady load
/// about every 5 s), so redb can reclaim pages, which it cannot across non-durable commits.
const DURABLE_EVERY_GATHERED: u64 = 100;
const MAX_PERSIST_BATCH: usize = 1 << 16;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("storage: {0}")]
    Db(String),
    #[error("storage: corrupt record under {key:?}: {err}")]
    Corrupt { key: String, err: String },
    #[error("storage: writer thread has stopped")]
    Closed,
    #[error("storage: cannot create data dir {path}: {err}")]
    DataDir { path: String, err: std::io::Error },
}

fn db_err(e: impl std::fmt::Display) -> StorageError {
    StorageError::Db(e.to_string())
}

/// A hint is keyed by the home node it is meant for and the key.
type HintKey = (String, String);

enum Op {
    Put {
        key: String,
        rec: Record,
    },
    PutHint {
        home: String,
        key: String,
        rec: Record,
    },
    DeleteHint {
        home: String,
        key: String,
        version: Version,
    },
}

impl Op {
    /// Whether this change applies over `cur`, what its key (or hint) holds now: a put or hint
    /// only when newer; a hint's deletion only of the very version that was delivered (a newer
    /// hint that arrived meanwhile stays).
    fn admits(&self, cur: Option<&Record>) -> bool {
        match self {
            Op::Put { rec, .. } | Op::PutHint { rec, .. } => rec.supersedes(cur),
            Op::DeleteHint { version, .. } => cur.map(|r| &r.version) == Some(version),
        }
    }
}

struct Job {
    op: Op,
    /// `None` for a change already published to memory (`--fsync never`): only persist it.
    reply: Option<oneshot::Sender<Result<bool, StorageError>>>,
}

pub struct Storage {
    data: RwLock<BTreeMap<String, Record>>,
    hints: Mutex<BTreeMap<HintKey, Record>>,
    // A std channel because the receiving side is a plain thread that blocks on it.
    jobs: Mutex<mpsc::Sender<Job>>,
    fsync: Fsync,
}

fn hint_db_key(home: &str, key: &str) -> String {
    format!("{home}\u{0}{key}")
}

impl Storage {
    /// Opens (or creates) `dir/node.redb`, loads it, and starts the writer thread.
    pub fn open(dir: &Path, fsync: Fsync) -> Result<Arc<Storage>, StorageError> {
        std::fs::create_dir_all(dir).map_err(|err| StorageError::DataDir {
            path: dir.display().to_string(),
            err,
        })?;
        let db = Database::create(dir.join("node.redb")).map_err(db_err)?;
        let mut data = BTreeMap::new();
        let mut hints = BTreeMap::new();
        {
            // Create both tables so later read transactions find them.
            let tx = db.begin_write().map_err(db_err)?;
            tx.open_table(DATA).map_err(db_err)?;
            tx.open_table(HINTS).map_err(db_err)?;
            tx.commit().map_err(db_err)?;
            let rx = db.begin_read().map_err(db_err)?;
            for item in rx
                .open_table(DATA)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                let key = k.value().to_string();
                let rec: Record =
                    serde_json::from_slice(v.value()).map_err(|e| StorageError::Corrupt {
                        key: key.clone(),
                        err: e.to_string(),
                    })?;
                data.insert(key, rec);
            }
            for item in rx
                .open_table(HINTS)
                .map_err(db_err)?
                .iter()
                .map_err(db_err)?
            {
                let (k, v) = item.map_err(db_err)?;
                let raw = k.value().to_string();
                let (home, key) = raw
                    .split_once('\u{0}')
                    .ok_or_else(|| StorageError::Corrupt {
                        key: raw.clone(),
                        err: "hint key without home".into(),
                    })?;
                let rec: Record =
                    serde_json::from_slice(v.value()).map_err(|e| StorageError::Corrupt {
                        key: raw.clone(),
                        err: e.to_string(),
                    })?;
                hints.insert((home.to_string(), key.to_string()), rec);
            }
        }
        let (tx, rx) = mpsc::channel();
        let storage = Arc::new(Storage {
            data: RwLock::new(data),
            hints: Mutex::new(hints),
            jobs: Mutex::new(tx),
            fsync,
        });
        let weak = Arc::downgrade(&storage);
        std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || writer(db, fsync, rx, weak))
            .map_err(db_err)?;
        Ok(storage)
    }

    pub fn get(&self, key: &str) -> Option<Record> {
        self.read_data().get(key).cloned()
    }

    /// Number of keys held (not counting hints).
    pub fn len(&self) -> usize {
        self.read_data().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Calls `f` on every key in key order, under the read lock (keep `f` cheap).
    pub fn scan(&self, mut f: impl FnMut(&str, &Record)) {
        for (k, r) in self.read_data().iter() {
            f(k, r);
        }
    }

    /// Stores `rec` if it is newer than what is held; resolves once durable (per --fsync).
    /// Returns whether it was applied. Either way the replica then holds something at least as
    /// new, which is what its acknowledgement means.
    pub async fn put(&self, key: &str, rec: Record) -> Result<bool, StorageError> {
        self.submit(Op::Put {
            key: key.to_string(),
            rec,
        })
        .await
    }

    pub async fn put_hint(&self, home: &str, key: &str, rec: Record) -> Result<bool, StorageError> {
        self.submit(Op::PutHint {
            home: home.to_string(),
            key: key.to_string(),
            rec,
        })
        .await
    }

    /// Deletes a delivered hint, unless a newer hint for the same home and key has arrived.
    pub async fn delete_hint(
        &self,
        home: &str,
        key: &str,
        version: &Version,
    ) -> Result<bool, StorageError> {
        self.submit(Op::DeleteHint {
            home: home.to_string(),
            key: key.to_string(),
            version: version.clone(),
        })
        .await
    }

    /// Every stored hint: (home node, key, record).
    pub fn hints(&self) -> Vec<(String, String, Record)> {
        self.lock_hints()
            .iter()
            .map(|((h, k), r)| (h.clone(), k.clone(), r.clone()))
            .collect()
    }

    /// The newest hint held for `key` (for any home), so a fallback can answer sloppy reads.
    pub fn hint_for(&self, key: &str) -> Option<Record> {
        let hints = self.lock_hints();
        crate::version::newest(
            hints
                .iter()
                .filter(|((_, k), _)| k == key)
                .map(|(_, r)| Some(r)),
        )
        .cloned()
    }

    async fn submit(&self, op: Op) -> Result<bool, StorageError> {
        if self.fsync == Fsync::Never {
            return self.publish(op);
        }
        let (reply, rx) = oneshot::channel();
        self.queue(Job {
            op,
            reply: Some(reply),
        })?;
        rx.await.map_err(|_| StorageError::Closed)?
    }

    fn queue(&self, job: Job) -> Result<(), StorageError> {
        self.jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job)
            .map_err(|_| StorageError::Closed)
    }

    /// `--fsync never`: decide and publish in memory now, persist behind (see the file note).
    /// The job is queued while the memory lock is held, so the writer sees the same order.
    fn publish(&self, op: Op) -> Result<bool, StorageError> {
        match &op {
            Op::Put { key, rec } => {
                let mut data = self.data.write().unwrap_or_else(|e| e.into_inner());
                if !op.admits(data.get(key)) {
                    return Ok(false);
                }
                data.insert(key.clone(), rec.clone());
                self.queue(Job { op, reply: None })?;
            }
            Op::PutHint { home, key, rec } => {
                let mut hints = self.lock_hints();
                let hk = (home.clone(), key.clone());
                if !op.admits(hints.get(&hk)) {
                    return Ok(false);
                }
                hints.insert(hk, rec.clone());
                self.queue(Job { op, reply: None })?;
            }
            Op::DeleteHint { home, key, .. } => {
                let mut hints = self.lock_hints();
                let hk = (home.clone(), key.clone());
                if !op.admits(hints.get(&hk)) {
                    return Ok(false);
                }
                hints.remove(&hk);
                self.queue(Job { op, reply: None })?;
            }
        }
        Ok(true)
    }

    fn read_data(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<String, Record>> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn lock_hints(&self) -> std::sync::MutexGuard<'_, BTreeMap<HintKey, Record>> {
        self.hints.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The writer thread: batch, apply, commit, then publish to memory and reply.
fn writer(db: Database, fsync: Fsync, rx: mpsc::Receiver<Job>, storage: std::sync::Weak<Storage>) {
    writer_loop(&db, fsync, rx, storage);
    if fsync == Fsync::Never {
        // The storage is gone and its queue drained: one durable (empty) commit makes the
        // non-durable ones before it survive a later crash.
        let done = db.begin_write().map_err(db_err).and_then(|mut tx| {
            tx.set_durability(Durability::Immediate);
            tx.commit().map_err(db_err)
        });
        if let Err(e) = done {
            tracing::error!("final commit failed: {e}");
        }
    }
}

fn writer_loop(
    db: &Database,
    fsync: Fsync,
    rx: mpsc::Receiver<Job>,
    storage: std::sync::Weak<Storage>,
) {
    let mut batches: u64 = 0;
    while let Ok(first) = rx.recv() {
        let mut jobs = vec![first];
        let mut max = MAX_BATCH;
        if fsync == Fsync::Never {
            // Nobody waits for these commits: let a few milliseconds of changes gather so one
            // redb commit (and its page writes) covers many, and a key written often in that
            // time is written once. Sleeping, not blocked in `recv`, the thread also costs the
            // senders no wake-ups.
            std::thread::sleep(PERSIST_GATHER);
            max = MAX_PERSIST_BATCH;
        }
        while jobs.len() < max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        batches += 1;
        let durable = match fsync {
            Fsync::Always => true,
            Fsync::Never => batches.is_multiple_of(DURABLE_EVERY_GATHERED),
        };
        if fsync == Fsync::Never {
            // Already published (`--fsync never`): persist only; nobody waits. Done even when
            // the storage is gone, so what was queued before a drop still reaches the file.
            if let Err(e) = persist_batch(db, &jobs, durable) {
                tracing::error!("commit failed: {e}");
            }
            continue;
        }
        let Some(st) = storage.upgrade() else { return };
        match apply_batch(db, &st, &jobs, durable) {
            Ok((applied, data_changes, hint_changes)) => {
                {
                    let mut data = st.data.write().unwrap_or_else(|e| e.into_inner());
                    for (k, r) in data_changes {
                        data.insert(k, r);
                    }
                }
                {
                    let mut hints = st.lock_hints();
                    for (hk, r) in hint_changes {
                        match r {
                            Some(r) => hints.insert(hk, r),
                            None => hints.remove(&hk),
                        };
                    }
                }
                for (job, ok) in jobs.into_iter().zip(applied) {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Ok(ok));
                    }
                }
            }
            Err(e) => {
                tracing::error!("commit failed: {e}");
                for job in jobs {
                    if let Some(reply) = job.reply {
                        let _ = reply.send(Err(StorageError::Db(e.to_string())));
                    }
                }
            }
        }
    }
}

type BatchResult = (
    Vec<bool>,
    BTreeMap<String, Record>,
    BTreeMap<HintKey, Option<Record>>,
);

/// Writes changes already published to memory, in queue order (a later change to the same key
/// or hint replaces an earlier one), in one transaction.
fn persist_batch(db: &Database, jobs: &[Job], durable: bool) -> Result<(), StorageError> {
    let mut data_changes: BTreeMap<&str, &Record> = BTreeMap::new();
    let mut hint_changes: BTreeMap<String, Option<&Record>> = BTreeMap::new();
    for job in jobs {
        match &job.op {
            Op::Put { key, rec } => {
                data_changes.insert(key, rec);
            }
            Op::PutHint { home, key, rec } => {
                hint_changes.insert(hint_db_key(home, key), Some(rec));
            }
            Op::DeleteHint { home, key, .. } => {
                hint_changes.insert(hint_db_key(home, key), None);
            }
        }
    }
    commit(db, durable, data_changes, hint_changes)
}

/// One redb write transaction: every data record and hint change (`None` removes the hint,
/// keyed by [`hint_db_key`]), immediately durable or not.
fn commit<'a>(
    db: &Database,
    durable: bool,
    data: impl IntoIterator<Item = (&'a str, &'a Record)>,
    hints: impl IntoIterator<Item = (String, Option<&'a Record>)>,
) -> Result<(), StorageError> {
    let mut tx = db.begin_write().map_err(db_err)?;
    tx.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    });
    {
        let mut t = tx.open_table(DATA).map_err(db_err)?;
        for (k, r) in data {
            let bytes = serde_json::to_vec(r).map_err(db_err)?;
            t.insert(k, bytes.as_slice()).map_err(db_err)?;
        }
        let mut h = tx.open_table(HINTS).map_err(db_err)?;
        for (dk, r) in hints {
            match r {
                Some(r) => {
                    let bytes = serde_json::to_vec(r).map_err(db_err)?;
                    h.insert(dk.as_str(), bytes.as_slice()).map_err(db_err)?;
                }
                None => {
                    h.remove(dk.as_str()).map_err(db_err)?;
                }
            }
        }
    }
    tx.commit().map_err(db_err)
}

fn apply_batch(
    db: &Database,
    st: &Storage,
    jobs: &[Job],
    durable: bool,
) -> Result<BatchResult, StorageError> {
    // Decide against memory (equal to the last committed state, since only this thread
    // writes), overlaid with this batch's own earlier changes.
    let mut data_changes: BTreeMap<String, Record> = BTreeMap::new();
    let mut hint_changes: BTreeMap<HintKey, Option<Record>> = BTreeMap::new();
    let mut applied = Vec::with_capacity(jobs.len());
    {
        let data = st.read_data();
        let hints = st.lock_hints();
        for job in jobs {
            let ok = match &job.op {
                Op::Put { key, rec } => {
                    let cur = data_changes.get(key).or_else(|| data.get(key));
                    let ok = job.op.admits(cur);
                    if ok {
                        data_changes.insert(key.clone(), rec.clone());
                    }
                    ok
                }
                Op::PutHint { home, key, rec } => {
                    let hk = (home.clone(), key.clone());
                    let cur = match hint_changes.get(&hk) {
                        Some(c) => c.as_ref(),
                        None => hints.get(&hk),
                    };
                    let ok = job.op.admits(cur);
                    if ok {
                        hint_changes.insert(hk, Some(rec.clone()));
                    }
                    ok
                }
                Op::DeleteHint { home, key, .. } => {
                    let hk = (home.clone(), key.clone());
                    let cur = match hint_changes.get(&hk) {
                        Some(c) => c.as_ref(),
                        None => hints.get(&hk),
                    };
                    let ok = job.op.admits(cur);
                    if ok {
                        hint_changes.insert(hk, None);
                    }
                    ok
                }
            };
            applied.push(ok);
        }
    }
    if data_changes.is_empty() && hint_changes.is_empty() {
        // Nothing new (replays, stale write-backs): what is held is already durable.
        return Ok((applied, data_changes, hint_changes));
    }
    commit(
        db,
        durable,
        data_changes.iter().map(|(k, r)| (k.as_str(), r)),
        hint_changes
            .iter()
            .map(|((home, key), r)| (hint_db_key(home, key), r.as_ref())),
    )?;
    Ok((applied, data_changes, hint_changes))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reopens `dir` once the previous writer thread has let go of the database.
    fn reopen(dir: &Path, fsync: Fsync) -> Arc<Storage> {
        for _ in 0..100 {
            match Storage::open(dir, fsync) {
                Ok(x) => return x,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        panic!("storage did not reopen");
    }

    #[tokio::test]
    async fn fsync_never_publishes_at_once_and_persists_behind() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), Fsync::Never).unwrap();
            assert!(s.put("a", Record::at(2)).await.unwrap());
            // Seen at once, before any commit was waited for; older and equal writes refused.
            assert_eq!(s.get("a"), Some(Record::at(2)));
            assert!(!s.put("a", Record::at(1)).await.unwrap());
            assert!(!s.put("a", Record::at(2)).await.unwrap());
            assert!(s.put("a", Record::at(3)).await.unwrap());
            assert!(s.put_hint("n2", "b", Record::at(5)).await.unwrap());
            assert!(s.put_hint("n2", "c", Record::at(6)).await.unwrap());
            assert!(!s
                .delete_hint("n2", "c", &Record::at(4).version)
                .await
                .unwrap());
            assert!(s
                .delete_hint("n2", "c", &Record::at(6).version)
                .await
                .unwrap());
            assert_eq!(s.hint_for("c"), None);
        }
        // The writer persists the queue in order (the newest of "a" last) before letting go.
        let s = reopen(dir.path(), Fsync::Never);
        assert_eq!(s.get("a"), Some(Record::at(3)));
        assert_eq!(s.hint_for("b"), Some(Record::at(5)));
        assert_eq!(s.hint_for("c"), None);
    }

    #[tokio::test]
    async fn keeps_newest_and_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let s = Storage::open(dir.path(), Fsync::Always).unwrap();
            assert!(s.put("a", Record::at(2)).await.unwrap());
            assert!(!s.put("a", Record::at(1)).await.unwrap());
            assert!(!s.put("a", Record::at(2)).await.unwrap());
            assert!(s.put_hint("n2", "b", Record::at(5)).await.unwrap());
            assert_eq!(s.get("a"), Some(Record::at(2)));
        }
        // The writer thread holds the database until it notices the storage is gone.
        let mut s = None;
        for _ in 0..100 {
            match Storage::open(dir.path(), Fsync::Always) {
                Ok(x) => {
                    s = Some(x);
                    break;
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        let s = s.expect("reopens");
        assert_eq!(s.get("a"), Some(Record::at(2)));
        assert_eq!(s.hint_for("b"), Some(Record::at(5)));
        assert!(!s
            .delete_hint("n2", "b", &Record::at(4).version)
            .await
            .unwrap());
        assert!(s
            .delete_hint("n2", "b", &Record::at(5).version)
            .await
            .unwrap());
        assert!(s.hints().is_empty());
    }
}
