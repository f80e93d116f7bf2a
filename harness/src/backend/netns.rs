//! The `netns` backend: one network namespace per node on a bridge, partitions as nftables
//! drop rules — real kernel-level faults, as Jepsen does them with iptables.
//!
//! OWNERSHIP NOTE (lead, 03:58 UTC): this file and harness/tests/netns_backend.rs are being
//! written by the netns helper. Harness helper: do not edit them; `run.rs` keeps calling
//! `netns::preflight()` and will construct `netns::NetnsCluster::start(spec).await` (same shape
//! as `LocalCluster::start`) once it lands.
//!
//! Not built yet. Starting it checks what it would need (root, `ip`, `nft`) and says so,
//! then reports that the backend is not available, so `--backend netns` fails loudly (exit 3)
//! instead of silently running something else.

use super::{BackendError, Result};

/// Check the preconditions and report why the backend cannot run.
pub fn preflight() -> Result<()> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(BackendError::Unsupported(
            "--backend netns needs root (network namespaces and nftables rules); run as root or use --backend local".into(),
        ));
    }
    for tool in ["ip", "nft"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()))
            .unwrap_or(false);
        if !found {
            return Err(BackendError::Unsupported(format!(
                "--backend netns needs `{tool}` on PATH (iproute2 / nftables)"
            )));
        }
    }
    Err(BackendError::Unsupported(
        "--backend netns is not implemented yet; use --backend local".into(),
    ))
}
