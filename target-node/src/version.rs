//! Versions and the records they stamp.
//!
//! One type serves both write modes. A `Version` is a pair `(ts, node)` ordered by `ts`, then by
//! node id, so two coordinators never mint equal versions:
//! - `lww`: `ts` is the coordinator's wall clock plus its offset, in microseconds — Cassandra's
//!   scheme. It is deliberately *not* a hybrid logical clock: a node whose clock runs behind
//!   mints versions older than ones already stored, and replicas then silently keep the older
//!   write's neighbour. That lost update is what the harness exists to show.
//! - `two-phase` (ABD): `ts` is a counter; the coordinator first learns the highest tag held by
//!   a read quorum and writes with `ts + 1`.

use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A write's tag: ordered by `ts`, ties broken by `node`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Version {
    /// Microseconds since the Unix epoch (lww) or a counter (two-phase).
    pub ts: u64,
    /// The coordinator that minted it.
    pub node: String,
}

/// A stored value with its version. Values are any JSON except `null`, which means "absent"
/// to clients and is refused at the API.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub value: serde_json::Value,
    pub version: Version,
}

impl Record {
    /// A test record: value `ts`, written by `n1` at version `ts`.
    #[cfg(test)]
    pub(crate) fn at(ts: u64) -> Record {
        Record {
            value: ts.into(),
            version: Version {
                ts,
                node: "n1".into(),
            },
        }
    }

    /// True when `self` should replace `current` on a replica: strictly newer only, so
    /// replaying the same write is a no-op and a replica never moves backwards.
    pub fn supersedes(&self, current: Option<&Record>) -> bool {
        match current {
            None => true,
            Some(c) => self.version > c.version,
        }
    }
}

/// The newest of some optional records (a missing record is older than any present one).
pub fn newest<'a, I>(records: I) -> Option<&'a Record>
where
    I: IntoIterator<Item = Option<&'a Record>>,
{
    records
        .into_iter()
        .flatten()
        .max_by(|a, b| a.version.cmp(&b.version))
}

/// The node's LWW clock: wall clock + a settable offset, strictly increasing per node.
///
/// A std `Mutex`, not a tokio one, because the critical section is a few arithmetic steps and
/// never awaits.
#[derive(Debug)]
pub struct Clock {
    node: String,
    inner: Mutex<ClockState>,
}

#[derive(Debug)]
struct ClockState {
    offset_ms: i64,
    /// Last LWW timestamp minted.
    last: u64,
    /// Last two-phase tag minted. Starts at the wall clock (µs) when the node starts, not at 0:
    /// a node restarted after a crash must never mint a tag it minted before (a write that
    /// reached only a replica outside the next read quorum would otherwise share its tag with
    /// a different value, and replicas would disagree under one tag). A restart takes far
    /// longer than the microseconds of tags one incarnation mints, so the new start is above
    /// them all. Plain wall clock, no offset: the skew knob is for LWW only.
    tag_last: u64,
}

fn now_micros() -> i128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i128)
        .unwrap_or(0)
}

impl Clock {
    pub fn new(node: &str, offset_ms: i64) -> Self {
        Clock {
            node: node.to_string(),
            inner: Mutex::new(ClockState {
                offset_ms,
                last: 0,
                tag_last: now_micros().clamp(0, u64::MAX as i128 / 4) as u64,
            }),
        }
    }

    pub fn set_offset_ms(&self, ms: i64) {
        self.lock().offset_ms = ms;
    }

    pub fn offset_ms(&self) -> i64 {
        self.lock().offset_ms
    }

    /// The next LWW version from the wall clock now.
    pub fn next_lww(&self) -> Version {
        let now = now_micros();
        let mut st = self.lock();
        let skewed = (now + st.offset_ms as i128 * 1000).clamp(0, u64::MAX as i128 / 2) as u64;
        let ts = next_lww_ts(st.last, skewed);
        st.last = ts;
        Version {
            ts,
            node: self.node.clone(),
        }
    }

    /// The next two-phase tag above the highest one a quorum reported. Also above every tag
    /// this node minted before: two concurrent writes through one coordinator that saw the
    /// same highest tag must still get distinct tags, or replicas could hold different values
    /// under one tag.
    pub fn next_tag(&self, highest_seen: Option<&Version>) -> Version {
        let seen = highest_seen.map(|v| v.ts).unwrap_or(0);
        let mut st = self.lock();
        let ts = seen.max(st.tag_last).saturating_add(1);
        st.tag_last = ts;
        Version {
            ts,
            node: self.node.clone(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ClockState> {
        // A poisoned clock only means a panic elsewhere; its state is two integers and stays
        // valid, so keep going rather than take the node down.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Strictly increasing per node even when the wall clock steps back (or the offset drops):
/// the same node never mints one timestamp twice.
pub fn next_lww_ts(last: u64, now_micros: u64) -> u64 {
    now_micros.max(last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(ts: u64, node: &str) -> Version {
        Version {
            ts,
            node: node.into(),
        }
    }

    #[test]
    fn order_is_ts_then_node() {
        assert!(v(2, "a") > v(1, "z"));
        assert!(v(1, "b") > v(1, "a"));
        assert_eq!(v(1, "a"), v(1, "a"));
    }

    #[test]
    fn only_strictly_newer_supersedes() {
        let old = Record {
            value: 1.into(),
            version: v(1, "a"),
        };
        let same = old.clone();
        let new = Record {
            value: 2.into(),
            version: v(1, "b"),
        };
        assert!(old.supersedes(None));
        assert!(!same.supersedes(Some(&old)));
        assert!(new.supersedes(Some(&old)));
        assert!(!old.supersedes(Some(&new)));
    }

    #[test]
    fn newest_skips_missing() {
        let a = Record {
            value: 1.into(),
            version: v(5, "a"),
        };
        let b = Record {
            value: 2.into(),
            version: v(7, "a"),
        };
        assert_eq!(newest([None, Some(&a), Some(&b)]), Some(&b));
        assert_eq!(newest([None, None]), None);
    }

    #[test]
    fn lww_clock_is_strictly_increasing_even_when_time_steps_back() {
        assert_eq!(next_lww_ts(100, 50), 101);
        assert_eq!(next_lww_ts(100, 500), 500);
        let c = Clock::new("n1", 0);
        let a = c.next_lww();
        c.set_offset_ms(-60_000);
        let b = c.next_lww();
        assert!(b > a, "a skewed-back clock must still not repeat");
    }

    #[test]
    fn skewed_clock_mints_older_versions_than_a_correct_one() {
        // The lost update the harness must be able to see: no hybrid clock hides it.
        let fast = Clock::new("n1", 0);
        let slow = Clock::new("n2", -10_000);
        let w1 = fast.next_lww();
        let w2 = slow.next_lww();
        assert!(w2 < w1);
    }

    #[test]
    fn two_phase_tag_is_above_what_was_seen() {
        let c = Clock::new("n2", 0);
        let a = c.next_tag(None);
        let high = v(u64::MAX / 2, "n3");
        let b = c.next_tag(Some(&high));
        assert_eq!(b, v(u64::MAX / 2 + 1, "n2"));
        // The same highest tag seen twice still gives two distinct tags.
        let c2 = c.next_tag(Some(&high));
        assert!(a < b && b < c2);
        assert_eq!(c2.node, "n2");
    }

    #[test]
    fn a_restarted_node_does_not_reuse_its_tags() {
        // Incarnation one mints a tag after seeing a small one, then "crashes".
        let before = Clock::new("n1", 0).next_tag(Some(&v(5, "n2")));
        // Restarts take milliseconds at least; 2 ms stands in for one here.
        std::thread::sleep(std::time::Duration::from_millis(2));
        // Incarnation two sees the same quorum state (its earlier write reached nobody it asks).
        let after = Clock::new("n1", 0).next_tag(Some(&v(5, "n2")));
        assert!(after > before, "{after:?} must be above {before:?}");
    }
}
