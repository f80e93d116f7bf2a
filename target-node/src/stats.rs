//! Counters behind `GET /stats`.
//!
//! Relaxed atomics: each counter is independent and read only for reporting, so no ordering
//! between them is promised or needed.

use std::sync::atomic::{AtomicU64, Ordering};

macro_rules! counters {
    ($($name:ident: $doc:literal),* $(,)?) => {
        #[derive(Debug, Default)]
        pub struct Stats {
            $(#[doc = $doc] pub $name: AtomicU64,)*
        }

        impl Stats {
            /// Every counter by name, in declaration order.
            pub fn snapshot(&self) -> serde_json::Map<String, serde_json::Value> {
                let mut m = serde_json::Map::new();
                $(m.insert(stringify!($name).to_string(), self.$name.load(Ordering::Relaxed).into());)*
                m
            }
        }
    };
}

counters! {
    requests: "Client requests received (any route outside /internal/).",
    reads: "Client reads.",
    writes: "Client writes.",
    cas: "Client compare-and-set operations.",
    unavailable: "Client requests answered 503 (quorum not reached in time).",
    internal_requests: "Replica-to-replica messages served (each message of a batch counts).",
    internal_batches: "POST /internal/batch exchanges served (messages per batch = their ratio).",
    read_repairs: "Stale replicas sent the newest value by read repair (async or blocking).",
    hints_stored: "Hints this node stored for unreachable home nodes.",
    hints_delivered: "Hints this node handed off to their home nodes.",
    anti_entropy_rounds: "Merkle exchanges this node started (one per peer per interval).",
    hashes_exchanged: "Tree hashes and leaf entries compared in those exchanges.",
    keys_repaired: "Keys repaired by anti-entropy (adopted here or pushed to the peer).",
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}
