//! The sweep of what dead runs left on a host: a harness killed outright (SIGKILL, a crash, a
//! power cut) cannot tear down, so its members run on. Each member folder holds `owner`
//! (`<machine id> <harness pid>`), written at lay-out; before laying out its own folder, a run
//! removes those of this machine's harnesses that are gone.

use super::SshCluster;
use crate::backend::remote::sh_quote;
use crate::backend::Result;

impl SshCluster {
    /// What earlier runs from this machine left on `id`'s host when their harness died before
    /// tearing down (SIGKILL, a crash, a power cut): each member folder holds an `owner` file,
    /// `<machine id> <harness pid>`; a folder whose owner is this machine and whose harness pid
    /// is no longer alive here is a dead run's. Its member and link proxy (pids in
    /// `member.pid`, `proxy.pid`, killed only if their command line names the folder, so a
    /// reused pid is never hit) are SIGKILLed, a lazyfs mount on its `data/` is unmounted, and
    /// the folder removed. Folders of live harnesses, of other machines, and those kept by
    /// `--keep-remote` (their `owner` is removed at tear-down) are left alone. Jepsen's `db`
    /// does the same by tearing a node down before setting it up.
    pub(super) fn sweep_dead_runs(&self, id: &str) -> Result<()> {
        let w = sh_quote(&self.remote(id)?.host.work_dir);
        let list = self.exec(
            id,
            &format!(
                "for f in {w}/quorate-*/owner; do [ -f \"$f\" ] && printf '%s %s\\n' \"${{f%/owner}}\" \"$(cat \"$f\")\"; done; true"
            ),
            None,
        )?;
        let me = machine_id();
        let dead: Vec<&str> = list
            .lines()
            .filter_map(|l| {
                let mut f = l.split_whitespace();
                let (dir, machine, pid) = (f.next()?, f.next()?, f.next()?.parse::<i32>().ok()?);
                let ours = machine == me && pid != std::process::id() as i32;
                (ours && !crate::backend::procs::pid_alive(pid)).then_some(dir)
            })
            .collect();
        for dir in dead {
            let d = sh_quote(dir);
            self.exec(
                id,
                &format!(
                    "for p in $(cat {d}/member.pid {d}/proxy.pid 2>/dev/null); do \
                     grep -qaF {d} /proc/$p/cmdline 2>/dev/null || continue; \
                     kill -CONT $p 2>/dev/null; kill -KILL $p 2>/dev/null; done; \
                     fusermount3 -uz {d}/data 2>/dev/null; rm -rf {d}; true"
                ),
                None,
            )?;
            tracing::info!(
                "{id}: removed {dir} on its host, left by a dead run (its harness is gone)"
            );
            eprintln!(
                "quorate run: {id}'s host: removed {dir}, left by an earlier run whose harness died (members killed)"
            );
        }
        Ok(())
    }
}

/// This machine's identity in a member folder's `owner` file: `/etc/machine-id`, else the
/// host name.
fn machine_id() -> String {
    std::fs::read_to_string("/etc/machine-id")
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|h| h.trim().to_string())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// `<machine id> <this harness's pid>`.
pub(super) fn owner_line() -> String {
    format!("{} {}", machine_id(), std::process::id())
}
