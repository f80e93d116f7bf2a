//! What several test binaries (and the checker's bench, which includes this file by path)
//! share: where the Porcupine data set is.

use std::path::PathBuf;

/// The Porcupine data set: `$QUORATE_PORCUPINE_DATA` when set, else the copy in the
/// repository (`checker/tests/data/porcupine`, with its licences and origin in its README). A
/// folder without `expected.json` is an error naming it (the tests that need the data fail with
/// it, never skip).
pub fn porcupine_data_dir() -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("QUORATE_PORCUPINE_DATA") {
        Some(d) => PathBuf::from(d),
        // Both crates that include this file (checker, harness) sit one level below the
        // workspace root.
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../checker/tests/data/porcupine"),
    };
    if !dir.join("expected.json").is_file() {
        anyhow::bail!(
            "Porcupine test data not found: {} has no expected.json. Set QUORATE_PORCUPINE_DATA \
             to the folder holding expected.json, jepsen/ and kv/.",
            dir.display()
        );
    }
    Ok(dir)
}
