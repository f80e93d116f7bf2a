//! Clock skew without the target's cooperation: libfaketime (Debian's `faketime` package)
//! preloaded into each member, reading its offset from a file of its own that the nemesis
//! rewrites while the member runs.
//!
//! Each member gets `LD_PRELOAD=<libfaketime.so.1>`, `FAKETIME_TIMESTAMP_FILE=<run>/clock/<id>`
//! holding a relative offset such as `+2.500` (seconds, fractions allowed),
//! `FAKETIME_NO_CACHE=1` (the file is read on every call, so a new offset takes effect at
//! once instead of after libfaketime's 10 s cache) and `FAKETIME_DONT_FAKE_MONOTONIC=1`: only
//! the wall clock moves. `CLOCK_MONOTONIC` is what timers, timeouts and tokio's `Instant` run
//! on; faking it too would fire or stall every timer in the member when the offset changes.
//!
//! A file is rewritten by writing a temporary file beside it and renaming it over the old one,
//! so a member never reads half an offset.
//!
//! libfaketime keeps a shared-memory segment and a semaphore per process
//! (`/dev/shm/faketime_shm_<pid>`, `/dev/shm/sem.faketime_sem_<pid>`) and removes them when
//! the process exits normally — never after SIGKILL, which is how members die here.
//! [`sweep_shm`] removes those of processes that are gone; the garage target runs it when its
//! cluster is torn down.

use super::{BoxFuture, Clock};
use crate::backend::Cluster;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Where Debian, Fedora and a source build put the library.
const CANDIDATES: [&str; 5] = [
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib64/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
    "/usr/local/lib/faketime/libfaketime.so.1",
];

/// Find libfaketime: `QUORATE_LIBFAKETIME` if set, else the usual install paths.
pub fn find_library() -> Result<PathBuf, String> {
    if let Some(p) = std::env::var_os("QUORATE_LIBFAKETIME") {
        let p = PathBuf::from(p);
        return if p.is_file() {
            Ok(p)
        } else {
            Err(format!(
                "QUORATE_LIBFAKETIME={}: not a file; expected the path of libfaketime.so.1",
                p.display()
            ))
        };
    }
    CANDIDATES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            format!(
                "--nemesis clock-skew for a third-party target needs libfaketime, which was not \
                 found in {}; install it (Debian/Ubuntu: apt-get install faketime) or set \
                 QUORATE_LIBFAKETIME to libfaketime.so.1",
                CANDIDATES.join(", ")
            )
        })
}

/// libfaketime's relative offset for `ms` milliseconds: `+2.500`, `-0.250`, `+0.000`.
pub fn offset_spec(ms: i64) -> String {
    let sign = if ms < 0 { '-' } else { '+' };
    let a = ms.unsigned_abs();
    format!("{sign}{}.{:03}", a / 1000, a % 1000)
}

/// One offset file per member under `dir`, and the environment that makes a member read it.
#[derive(Debug, Clone)]
pub struct Faketime {
    library: PathBuf,
    dir: PathBuf,
}

impl Faketime {
    pub fn new(library: PathBuf, dir: PathBuf) -> Faketime {
        Faketime { library, dir }
    }

    /// The offset file of `node`.
    pub fn file(&self, node: &str) -> PathBuf {
        self.dir.join(format!("{node}.faketime"))
    }

    /// Preload libfaketime into `cmd` for `node`. The offset file is created at `+0.000` if it
    /// does not exist yet; a restarted member keeps the offset it had.
    pub fn prepare(&self, node: &str, cmd: &mut Command) -> std::io::Result<()> {
        fs::create_dir_all(&self.dir)?;
        let file = self.file(node);
        if !file.exists() {
            write_atomically(&file, &offset_spec(0))?;
        }
        cmd.env("LD_PRELOAD", &self.library)
            .env("FAKETIME_TIMESTAMP_FILE", &file)
            .env("FAKETIME_NO_CACHE", "1")
            .env("FAKETIME_DONT_FAKE_MONOTONIC", "1");
        Ok(())
    }
}

impl Faketime {
    /// Rewrite `node`'s offset file (a quick file write: done in place, not off the workers).
    pub fn set(&self, node: &str, ms: i64) -> Result<(), String> {
        let file = self.file(node);
        write_atomically(&file, &offset_spec(ms))
            .map_err(|e| format!("clock offset {ms} ms on {node}: {}: {e}", file.display()))
    }
}

impl Clock for Faketime {
    fn set_offset<'a>(
        &'a self,
        cluster: &'a dyn Cluster,
        node: &'a str,
        ms: i64,
    ) -> BoxFuture<'a, Result<(), String>> {
        // A remote member reads its host's copy of the file (`--backend ssh`).
        let done = self.set(node, ms).and_then(|_| {
            cluster
                .sync_file(node, &self.file(node))
                .map_err(|e| format!("clock offset {ms} ms on {node}: {e}"))
        });
        Box::pin(async move { done })
    }
}

fn write_atomically(file: &Path, text: &str) -> std::io::Result<()> {
    let tmp = file.with_extension("tmp");
    fs::write(&tmp, format!("{text}\n"))?;
    fs::rename(&tmp, file)
}

/// Remove libfaketime's shared-memory files of processes that no longer exist (see the module
/// note). Returns the names removed.
pub fn sweep_shm() -> Vec<String> {
    sweep_shm_in(Path::new("/dev/shm"))
}

fn sweep_shm_in(dir: &Path) -> Vec<String> {
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return removed;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = shm_owner(&name) else {
            continue;
        };
        if !crate::backend::procs::pid_alive(pid) && fs::remove_file(entry.path()).is_ok() {
            removed.push(name);
        }
    }
    removed.sort();
    removed
}

/// The pid a libfaketime shm/semaphore file belongs to.
fn shm_owner(name: &str) -> Option<i32> {
    let digits = name
        .strip_prefix("faketime_shm_")
        .or_else(|| name.strip_prefix("sem.faketime_sem_"))?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|&p| p > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_libfaketime_relative_seconds() {
        assert_eq!(offset_spec(0), "+0.000");
        assert_eq!(offset_spec(2500), "+2.500");
        assert_eq!(offset_spec(-250), "-0.250");
        assert_eq!(offset_spec(-4000), "-4.000");
    }

    #[test]
    fn only_shm_files_of_dead_processes_are_swept() {
        assert_eq!(shm_owner("faketime_shm_123"), Some(123));
        assert_eq!(shm_owner("sem.faketime_sem_77"), Some(77));
        for other in [
            "faketime_shm_",
            "faketime_shm_1x",
            "sem.other_1",
            "faketime_shm_0",
        ] {
            assert_eq!(shm_owner(other), None, "{other}");
        }
        let dir = tempfile::tempdir().unwrap();
        let me = std::process::id();
        // A pid above the kernel's maximum (4194304) cannot exist.
        let dead = 9_999_999;
        for name in [
            format!("faketime_shm_{me}"),
            format!("faketime_shm_{dead}"),
            format!("sem.faketime_sem_{dead}"),
            "unrelated".to_string(),
        ] {
            fs::write(dir.path().join(name), b"").unwrap();
        }
        let removed = sweep_shm_in(dir.path());
        assert_eq!(
            removed,
            vec![
                format!("faketime_shm_{dead}"),
                format!("sem.faketime_sem_{dead}")
            ]
        );
        assert!(dir.path().join(format!("faketime_shm_{me}")).exists());
        assert!(dir.path().join("unrelated").exists());
    }

    #[test]
    fn a_preloaded_process_reads_the_offset_file_as_it_changes() {
        let Ok(lib) = find_library() else {
            panic!("{}", find_library().unwrap_err());
        };
        let dir = tempfile::tempdir().unwrap();
        let ft = Faketime::new(lib, dir.path().to_path_buf());
        let date = |ft: &Faketime| {
            let mut cmd = Command::new("date");
            cmd.arg("+%s");
            ft.prepare("n1", &mut cmd).unwrap();
            let out = cmd.output().unwrap();
            assert!(out.status.success(), "{out:?}");
            String::from_utf8_lossy(&out.stdout)
                .trim()
                .parse::<i64>()
                .unwrap()
        };
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs() as i64
        };
        let t0 = now();
        let faked = date(&ft);
        assert!((faked - t0).abs() <= 60, "offset 0: {faked} vs {t0}");
        ft.set("n1", 3_600_000).unwrap();
        let faked = date(&ft);
        assert!((faked - now() - 3600).abs() <= 60, "offset +1 h: {faked}");
        ft.set("n1", -7_200_000).unwrap();
        let faked = date(&ft);
        assert!((faked - now() + 7200).abs() <= 60, "offset -2 h: {faked}");
        sweep_shm();
    }
}
