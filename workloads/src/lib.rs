//! quorate-workloads: what clients do (op generators) and which checks each history gets.
//!
//! - [`register`]: the register workload — reads, unique writes and (optionally) cas on
//!   rotating keys, one seeded generator per client slot.
//! - [`set`]: the set workload — adds of unique elements (each under a key of its own) and
//!   set reads, on rotating sets.
//!
//! Generators are pure: they decide the next op from the seed and what the client observed,
//! and never touch the network, so the same seed gives every client the same op sequence
//! (kinds and values; a fault that pins clients to one key changes only the key).
pub mod register;
pub mod set;

pub use register::{key_name, OpKind, OpSpec, RegisterClient, RegisterWorkload, WorkloadError};
pub use set::{SetClient, SetOp, SetOpKind, SetWorkload};
