//! The history recorder: every event goes straight to `history.jsonl`, one line per write.
//!
//! Line order is the history's order (HISTORY.md), so `index` and `time` are assigned under
//! the same lock as the write: both then never decrease along the file. The file is written
//! unbuffered (one `write` per line) so that a harness crash loses nothing already recorded;
//! at a few thousand ops a second that is a few thousand small syscalls, well within budget.
//! The lock is a std `Mutex`, not a tokio one: it is held only for one formatted write and
//! never across an `.await`.

use quorate_checker::history::{jsonl, Event, EventType, Process};
use serde_json::Value;
use std::fs::File;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

/// Counters the progress bar and the summary read.
#[derive(Debug, Default)]
pub struct Counts {
    pub invokes: AtomicU64,
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub info: AtomicU64,
    /// Faults currently active (nemesis starts minus stops).
    pub faults_active: AtomicU64,
}

pub struct Recorder {
    inner: Mutex<Inner>,
    start: Instant,
    pub counts: Counts,
}

struct Inner {
    file: File,
    next_index: u64,
    last_time: i64,
    /// Set after a write error: the run goes on, but the error is reported at the end.
    error: Option<String>,
}

impl Recorder {
    pub fn create(path: &Path) -> std::io::Result<Recorder> {
        let file = File::create(path)?;
        Ok(Recorder {
            inner: Mutex::new(Inner {
                file,
                next_index: 0,
                last_time: 0,
                error: None,
            }),
            start: Instant::now(),
            counts: Counts::default(),
        })
    }

    /// When the run started (time 0 of the history).
    pub fn start(&self) -> Instant {
        self.start
    }

    /// Stamp `index` and `time` on the event and append it. Returns the index.
    pub fn record(&self, mut ev: Event) -> u64 {
        let c = &self.counts;
        if ev.is_client() {
            match ev.kind {
                EventType::Invoke => c.invokes.fetch_add(1, Ordering::Relaxed),
                EventType::Ok => c.ok.fetch_add(1, Ordering::Relaxed),
                EventType::Fail => c.fail.fetch_add(1, Ordering::Relaxed),
                EventType::Info => c.info.fetch_add(1, Ordering::Relaxed),
            };
        } else if ev.process == Process::Nemesis {
            if ev.f.ends_with("-start") {
                c.faults_active.fetch_add(1, Ordering::Relaxed);
            } else if ev.f.ends_with("-stop") {
                let _ = c
                    .faults_active
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| v.checked_sub(1));
            }
        }
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let index = inner.next_index;
        inner.next_index += 1;
        // Monotonic even if two threads read the clock in the opposite order to the lock.
        let t = (self.start.elapsed().as_nanos() as i64).max(inner.last_time);
        inner.last_time = t;
        ev.index = Some(index);
        ev.time = Some(t);
        let mut line = jsonl::to_line(&ev);
        line.push('\n');
        if let Err(e) = inner.file.write_all(line.as_bytes()) {
            if inner.error.is_none() {
                inner.error = Some(e.to_string());
            }
        }
        index
    }

    /// A nemesis event (`<fault>-start` / `-stop`).
    pub fn nemesis(&self, f: &str, value: Value) {
        tracing::info!(target: "quorate::nemesis", "{f} {value}");
        self.record(Event::new(Process::Nemesis, EventType::Info, f, value));
    }

    /// A nemesis event for a fault step that failed: `value` says what was actually done,
    /// `error` what could not be (HISTORY.md: `"error"` on the nemesis event).
    pub fn nemesis_error(&self, f: &str, value: Value, error: &str) {
        tracing::error!(target: "quorate::nemesis", "{f} {value} FAILED: {error}");
        let mut ev = Event::new(Process::Nemesis, EventType::Info, f, value);
        ev.error = Some(error.to_string());
        self.record(ev);
    }

    /// A harness observation.
    pub fn harness(&self, f: &str, value: Value) {
        self.record(Event::new(Process::Harness, EventType::Info, f, value));
    }

    /// How many lines were written.
    pub fn len(&self) -> u64 {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .next_index
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The first write error, if any.
    pub fn error(&self) -> Option<String> {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .error
            .clone()
    }

    /// Flush to disk (end of run). A failure becomes the recorder's [`Recorder::error`] (unless
    /// a write failed first): a history that may not be on disk is no basis for a verdict.
    pub fn sync(&self) {
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = inner.file.sync_data() {
            if inner.error.is_none() {
                inner.error = Some(format!("cannot sync it to disk: {e}"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn lines_are_the_checkers_own_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        let rec = Recorder::create(&path).unwrap();
        rec.record(
            Event::new(Process::Client(0), EventType::Invoke, "read", json!(null)).with_key("k0"),
        );
        rec.harness("convergence", json!({"converged": true}));
        rec.sync();
        assert_eq!(rec.error(), None);
        let text = std::fs::read_to_string(&path).unwrap();
        let events = jsonl::read(&text).unwrap();
        assert_eq!(events.len(), 2);
        assert_eq!(text.lines().next().unwrap(), jsonl::to_line(&events[0]));
    }

    #[test]
    fn a_failed_sync_is_the_recorders_error() {
        // /dev/null takes every write but cannot be synced (EINVAL).
        let rec = Recorder::create(Path::new("/dev/null")).unwrap();
        rec.harness("convergence", json!(null));
        assert_eq!(rec.error(), None);
        rec.sync();
        let e = rec.error().expect("the sync failure is kept");
        assert!(e.starts_with("cannot sync it to disk: "), "{e}");
    }
}
