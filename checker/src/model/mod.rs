//! Sequential specifications (models) the linearizability search checks against.
//!
//! STUB written by the lead so the I/O side can compile against it; the search side owns this
//! module and replaces the body (keep `ModelKind` and its parsing).

use std::fmt;
use std::str::FromStr;

/// The models `--model` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModelKind {
    /// read/write.
    Register,
    /// read/write/cas, with HISTORY.md's `mismatch` fail (the default).
    CasRegister,
    /// Porcupine's kv: get/put/append of strings, from the empty string.
    Kv,
    /// add/read of a set.
    Set,
}

impl FromStr for ModelKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(ModelKind::Register),
            "cas-register" => Ok(ModelKind::CasRegister),
            "kv" => Ok(ModelKind::Kv),
            "set" => Ok(ModelKind::Set),
            other => Err(format!(
                "unknown model {other:?}; expected cas-register, register, kv or set"
            )),
        }
    }
}

impl fmt::Display for ModelKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ModelKind::Register => "register",
            ModelKind::CasRegister => "cas-register",
            ModelKind::Kv => "kv",
            ModelKind::Set => "set",
        })
    }
}
