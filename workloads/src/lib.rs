//! quorate-workloads: what clients do (op generators) and which checks each history gets.
//!
//! - [`register`]: the register workload — reads, unique writes and (optionally) cas on
//!   rotating keys, one seeded generator per client slot.
//!
//! Generators are pure: they decide the next op from the seed and what the client observed,
//! and never touch the network, so the same seed gives every client the same op sequence
//! (kinds and values; a fault that pins clients to one key changes only the key).
pub mod register;

pub use register::{OpKind, OpSpec, RegisterClient, RegisterWorkload, WorkloadError};
