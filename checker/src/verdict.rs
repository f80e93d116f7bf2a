//! A check's verdict: valid, invalid, or unknown (a check gave up). Serialises as JSON `true`,
//! `false` or `"unknown"` (INTERFACES.md).

use serde::{Serialize, Serializer};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verdict {
    Valid,
    /// A check gave up (time or memory limit) and none found an anomaly.
    Unknown,
    Invalid,
}

impl Verdict {
    /// Combine verdicts: invalid > unknown > valid.
    pub fn and(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    /// The process exit code for this verdict (0 valid, 1 invalid, 2 unknown).
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Valid => 0,
            Verdict::Invalid => 1,
            Verdict::Unknown => 2,
        }
    }
}

impl Serialize for Verdict {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Verdict::Valid => s.serialize_bool(true),
            Verdict::Invalid => s.serialize_bool(false),
            Verdict::Unknown => s.serialize_str("unknown"),
        }
    }
}
