//! The results store: `<results>/<name>/<yyyymmddThhmmssZ>/` (INTERFACES.md), `-2`, `-3` …
//! when that folder exists, and `<results>/latest` as a relative symlink to the newest run.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// `yyyymmddThhmmssZ` for a Unix time (UTC), without a date library: days to civil date by
/// Howard Hinnant's algorithm.
pub fn stamp(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}{mo:02}{d:02}T{h:02}{m:02}{s:02}Z")
}

pub fn now_stamp() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    stamp(secs)
}

/// Check a run name: one path component, no surprises in a folder name.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name != "latest"
        && name != "compare"
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "--name {name:?}: expected letters, digits, '-', '_' or '.' (not starting with '.', not \"latest\" or \"compare\")"
        ))
    }
}

/// Create a fresh run folder. The `create_dir` (not `create_dir_all`) on the last component
/// is what makes two runs in the same second get different folders.
pub fn create_run_dir(results: &Path, name: &str) -> io::Result<PathBuf> {
    let parent = results.join(name);
    std::fs::create_dir_all(&parent)?;
    let base = now_stamp();
    for k in 1..1000 {
        let dir = if k == 1 {
            parent.join(&base)
        } else {
            parent.join(format!("{base}-{k}"))
        };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(format!(
        "{}: 999 runs this second already",
        parent.display()
    )))
}

/// Point `<results>/latest` at `run_dir` (relative), replacing any old link atomically.
pub fn update_latest(results: &Path, run_dir: &Path) -> io::Result<()> {
    let rel = run_dir
        .strip_prefix(results)
        .map_err(|_| io::Error::other("run folder is not inside the results folder"))?;
    let tmp = results.join(format!(".latest-{}", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(rel, &tmp)?;
    std::fs::rename(&tmp, results.join("latest"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_utc_civil_dates() {
        assert_eq!(stamp(0), "19700101T000000Z");
        assert_eq!(stamp(951_782_400), "20000229T000000Z");
        assert_eq!(stamp(1_764_128_096), "20251126T033456Z");
    }

    #[test]
    fn same_second_runs_get_suffixes() {
        let t = tempfile::tempdir().unwrap();
        let a = create_run_dir(t.path(), "x").unwrap();
        let b = create_run_dir(t.path(), "x").unwrap();
        assert_ne!(a, b);
        update_latest(t.path(), &b).unwrap();
        let link = std::fs::read_link(t.path().join("latest")).unwrap();
        assert!(link.is_relative());
        assert_eq!(t.path().join(link), b);
    }

    #[test]
    fn names_are_checked() {
        assert!(validate_name("node-strict-register").is_ok());
        assert!(validate_name("../x").is_err());
        assert!(validate_name("latest").is_err());
    }
}
