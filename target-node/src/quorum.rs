//! Quorum counting: the pure decisions a coordinator makes as replica answers arrive.
//!
//! No I/O here: the coordinator feeds answers in as they come and asks what to do next
//! (STYLE.md 3). A write needs W acknowledgements; a read needs R answers and takes the newest;
//! a read's write-back (blocking read repair, ABD's second phase) needs W replicas holding the
//! newest version durably before the read may answer.

use crate::version::{Record, Version};

/// Where a quorum stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Not yet decided; more answers may decide it.
    Pending,
    /// Enough successes.
    Reached,
    /// Too many failures: even if every outstanding replica succeeds, the quorum is missed.
    Impossible,
}

/// Counts acks for one write (or write-back) sent to some replicas.
#[derive(Clone, Debug)]
pub struct WriteTally {
    needed: usize,
    targets: usize,
    acks: usize,
    failures: usize,
}

impl WriteTally {
    pub fn new(needed: usize, targets: usize) -> Self {
        WriteTally {
            needed,
            targets,
            acks: 0,
            failures: 0,
        }
    }

    /// A sloppy quorum tried one more (fallback) replica.
    pub fn add_target(&mut self) {
        self.targets += 1;
    }

    pub fn ack(&mut self) -> Progress {
        self.acks += 1;
        self.progress()
    }

    pub fn fail(&mut self) -> Progress {
        self.failures += 1;
        self.progress()
    }

    pub fn acks(&self) -> usize {
        self.acks
    }

    pub fn progress(&self) -> Progress {
        if self.acks >= self.needed {
            Progress::Reached
        } else if self.targets.saturating_sub(self.failures) < self.needed {
            Progress::Impossible
        } else {
            Progress::Pending
        }
    }
}

/// One replica's answer to a read: what it holds (nothing, or a record).
#[derive(Clone, Debug)]
pub struct ReadAnswer {
    pub replica: usize,
    pub record: Option<Record>,
}

/// Collects read answers until R have arrived.
#[derive(Clone, Debug)]
pub struct ReadTally {
    needed: usize,
    targets: usize,
    failures: usize,
    answers: Vec<ReadAnswer>,
}

impl ReadTally {
    pub fn new(needed: usize, targets: usize) -> Self {
        ReadTally {
            needed,
            targets,
            failures: 0,
            answers: Vec::new(),
        }
    }

    pub fn add_target(&mut self) {
        self.targets += 1;
    }

    pub fn answer(&mut self, a: ReadAnswer) -> Progress {
        self.answers.push(a);
        self.progress()
    }

    pub fn fail(&mut self) -> Progress {
        self.failures += 1;
        self.progress()
    }

    pub fn progress(&self) -> Progress {
        if self.answers.len() >= self.needed {
            Progress::Reached
        } else if self.targets.saturating_sub(self.failures) < self.needed {
            Progress::Impossible
        } else {
            Progress::Pending
        }
    }

    pub fn answers(&self) -> &[ReadAnswer] {
        &self.answers
    }

    /// The newest record among the answers (None when no replica holds the key).
    pub fn newest(&self) -> Option<&Record> {
        crate::version::newest(self.answers.iter().map(|a| a.record.as_ref()))
    }

    /// Replicas that answered with something older than `newest` (or nothing).
    pub fn stale(&self) -> Vec<usize> {
        let top = self.newest().map(|r| &r.version);
        self.answers
            .iter()
            .filter(|a| a.record.as_ref().map(|r| &r.version) < top)
            .map(|a| a.replica)
            .collect()
    }

    /// How many answering replicas already hold the newest version.
    pub fn holders_of_newest(&self) -> usize {
        let top = self.newest().map(|r| &r.version);
        self.answers
            .iter()
            .filter(|a| a.record.as_ref().map(|r| &r.version) == top)
            .count()
    }

    /// Blocking repair (ABD's write-back) is needed when an answering replica is stale, or
    /// when fewer than W answering replicas hold the newest version. When neither holds, W
    /// replicas answered the newest from durable state: it is already at a write quorum, and
    /// every later read quorum meets it.
    pub fn needs_write_back(&self, w: usize) -> bool {
        self.newest().is_some() && (self.holders_of_newest() < w || !self.stale().is_empty())
    }

    /// The highest tag seen (two-phase writes' first phase).
    pub fn highest_version(&self) -> Option<&Version> {
        self.newest().map(|r| &r.version)
    }
}

/// A timed-out or failed write's `may_have_applied`: false only when no replica was ever sent
/// the write (every attempt failed to connect), so the client may record it as `fail`.
pub fn may_have_applied(sent_to_any: bool) -> bool {
    sent_to_any
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_reaches_w_acks() {
        let mut t = WriteTally::new(2, 3);
        assert_eq!(t.ack(), Progress::Pending);
        assert_eq!(t.fail(), Progress::Pending);
        assert_eq!(t.ack(), Progress::Reached);
    }

    #[test]
    fn write_impossible_once_too_many_fail() {
        let mut t = WriteTally::new(2, 3);
        assert_eq!(t.fail(), Progress::Pending);
        assert_eq!(t.fail(), Progress::Impossible);
    }

    #[test]
    fn sloppy_fallback_keeps_a_write_alive() {
        let mut t = WriteTally::new(2, 3);
        t.fail();
        t.add_target();
        assert_eq!(t.fail(), Progress::Pending);
        t.ack();
        assert_eq!(t.ack(), Progress::Reached);
    }

    #[test]
    fn w1_is_reached_by_one_ack() {
        let mut t = WriteTally::new(1, 3);
        assert_eq!(t.ack(), Progress::Reached);
    }

    #[test]
    fn read_takes_newest_and_names_stale() {
        let mut t = ReadTally::new(3, 3);
        t.answer(ReadAnswer {
            replica: 0,
            record: Some(Record::at(5)),
        });
        t.answer(ReadAnswer {
            replica: 1,
            record: None,
        });
        assert_eq!(
            t.answer(ReadAnswer {
                replica: 2,
                record: Some(Record::at(3))
            }),
            Progress::Reached
        );
        assert_eq!(t.newest().map(|r| r.version.ts), Some(5));
        let mut s = t.stale();
        s.sort();
        assert_eq!(s, vec![1, 2]);
        assert!(t.needs_write_back(2));
    }

    #[test]
    fn agreeing_quorum_needs_no_write_back() {
        let mut t = ReadTally::new(2, 3);
        t.answer(ReadAnswer {
            replica: 0,
            record: Some(Record::at(4)),
        });
        t.answer(ReadAnswer {
            replica: 2,
            record: Some(Record::at(4)),
        });
        assert!(!t.needs_write_back(2));
        assert!(t.stale().is_empty());
    }

    #[test]
    fn one_answer_below_w_needs_write_back() {
        let mut t = ReadTally::new(1, 3);
        t.answer(ReadAnswer {
            replica: 1,
            record: Some(Record::at(4)),
        });
        assert!(t.needs_write_back(2));
        assert!(!t.needs_write_back(1));
    }

    #[test]
    fn empty_read_needs_no_write_back() {
        let mut t = ReadTally::new(2, 3);
        t.answer(ReadAnswer {
            replica: 0,
            record: None,
        });
        t.answer(ReadAnswer {
            replica: 1,
            record: None,
        });
        assert!(t.newest().is_none());
        assert!(!t.needs_write_back(2));
    }

    #[test]
    fn read_impossible_after_failures() {
        let mut t = ReadTally::new(2, 3);
        t.fail();
        assert_eq!(t.fail(), Progress::Impossible);
    }

    #[test]
    fn may_have_applied_is_false_only_when_nothing_was_sent() {
        assert!(!may_have_applied(false));
        assert!(may_have_applied(true));
    }
}
