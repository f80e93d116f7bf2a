//! lazyfs on a real mount: what survives a power cut is exactly what the durability model
//! (harness/src/lazyfs/mod.rs) says — written and not fsynced is gone, fsynced is kept, an
//! unsynced rename, create or unlink is undone, an fsync commits every earlier metadata
//! operation (ext4's journal), a directory fsync commits metadata but no data — and every call
//! redb and Garage make works. After each test: the mount is gone and its server has exited.
//!
//! Needs /dev/fuse and fusermount3 (scripts/install-deps.sh installs fuse3); as root.

use quorate::lazyfs::mount::{is_mounted, Mount};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

struct Fixture {
    _dir: tempfile::TempDir,
    backing: PathBuf,
    at: PathBuf,
    log: PathBuf,
    mount: Option<Mount>,
    pids: Vec<u32>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let backing = dir.path().join("durable");
        let at = dir.path().join("data");
        let log = dir.path().join("lazyfs.log");
        let mut f = Fixture {
            _dir: dir,
            backing,
            at,
            log,
            mount: None,
            pids: Vec::new(),
        };
        f.mount();
        f
    }

    fn mount(&mut self) {
        let m = Mount::start_with(
            Path::new(env!("CARGO_BIN_EXE_quorate")),
            &self.backing,
            &self.at,
            &self.log,
        )
        .unwrap();
        self.pids.push(m.pid().unwrap());
        assert!(is_mounted(&self.at), "{} is not mounted", self.at.display());
        // The server and auto_unmount's fusermount3 are found by their command lines, so the
        // check that none is left afterwards can see them.
        assert!(quorate::lazyfs::mount::helpers_of(&self.at).len() >= 2);
        self.mount = Some(m);
    }

    fn p(&self, name: &str) -> PathBuf {
        self.at.join(name)
    }

    /// The power cut, then the mount again; what was dropped.
    fn cut(&mut self) -> quorate::lazyfs::model::Unsynced {
        let dropped = self.mount.as_mut().unwrap().cut().unwrap();
        self.mount = None;
        self.assert_gone();
        self.mount();
        dropped
    }

    fn assert_gone(&self) {
        assert!(!is_mounted(&self.at), "{} still mounted", self.at.display());
        for pid in &self.pids {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists()
                    || fs::read_to_string(format!("/proc/{pid}/stat"))
                        .is_ok_and(|s| s.contains(") Z ")),
                "lazyfs server {pid} is still running"
            );
        }
        // fusermount3 exits a moment after it unmounted: a bounded wait.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !quorate::lazyfs::mount::helpers_of(&self.at).is_empty()
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let helpers = quorate::lazyfs::mount::helpers_of(&self.at);
        assert!(
            helpers.is_empty(),
            "fusermount3 still running for {}: {helpers:?}",
            self.at.display()
        );
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(mut m) = self.mount.take() {
            m.stop();
        }
        if !std::thread::panicking() {
            self.assert_gone();
        }
    }
}

fn write_file(p: &Path, data: &[u8], sync: bool) {
    let mut f = File::create(p).unwrap();
    f.write_all(data).unwrap();
    if sync {
        f.sync_all().unwrap();
    }
}

fn fsync_dir(p: &Path) {
    File::open(p).unwrap().sync_all().unwrap();
}

#[test]
fn written_and_not_fsynced_is_gone_and_fsynced_is_kept() {
    let mut f = Fixture::new();
    write_file(&f.p("kept"), b"durable", true);
    write_file(&f.p("lost"), b"volatile", false);
    fsync_dir(&f.at);
    // Both names were committed by the directory fsync; only one file's data was synced.
    assert_eq!(
        fs::read(f.p("lost")).unwrap(),
        b"volatile",
        "visible before the cut"
    );
    let dropped = f.cut();
    assert_eq!(dropped.bytes, 8, "{dropped:?}");
    assert_eq!(dropped.files, 1, "{dropped:?}");
    assert_eq!(dropped.metadata_ops, 0, "{dropped:?}");
    assert_eq!(fs::read(f.p("kept")).unwrap(), b"durable");
    assert_eq!(
        fs::read(f.p("lost")).unwrap(),
        b"",
        "its name was durable, its data not"
    );
}

#[test]
fn a_create_never_committed_is_undone_and_an_fsync_commits_every_earlier_metadata_op() {
    let mut f = Fixture::new();
    write_file(&f.p("a"), b"a", false);
    fs::create_dir(f.p("dir")).unwrap();
    let dropped = f.cut();
    assert_eq!(dropped.metadata_ops, 2, "{dropped:?}");
    assert_eq!(dropped.first_ops, ["create a", "mkdir dir"]);
    assert!(!f.p("a").exists() && !f.p("dir").exists());

    // An fsync of one file commits the journal: b's and dir2's creation too, not b's data.
    write_file(&f.p("b"), b"bbbb", false);
    fs::create_dir(f.p("dir2")).unwrap();
    write_file(&f.p("dir2/c"), b"cc", true);
    f.cut();
    assert!(f.p("dir2").is_dir());
    assert_eq!(fs::read(f.p("dir2/c")).unwrap(), b"cc");
    assert_eq!(fs::read(f.p("b")).unwrap(), b"");
}

#[test]
fn an_unsynced_rename_or_unlink_is_undone_and_a_directory_fsync_commits_it() {
    let mut f = Fixture::new();
    write_file(&f.p("x"), b"old", true);
    write_file(&f.p("tmp"), b"new", true);
    write_file(&f.p("y"), b"y", true);
    fs::rename(f.p("tmp"), f.p("x")).unwrap();
    fs::remove_file(f.p("y")).unwrap();
    assert_eq!(fs::read(f.p("x")).unwrap(), b"new");
    assert!(!f.p("y").exists());
    let dropped = f.cut();
    assert_eq!(
        dropped.first_ops,
        ["rename tmp -> x", "unlink y"],
        "{dropped:?}"
    );
    assert_eq!(fs::read(f.p("x")).unwrap(), b"old", "rename undone");
    assert_eq!(fs::read(f.p("tmp")).unwrap(), b"new");
    assert_eq!(fs::read(f.p("y")).unwrap(), b"y", "unlink undone");

    // The atomic-replace pattern, done right: fsync the file, rename, fsync the directory.
    fs::rename(f.p("tmp"), f.p("x")).unwrap();
    fsync_dir(&f.at);
    f.cut();
    assert_eq!(fs::read(f.p("x")).unwrap(), b"new");
    assert!(!f.p("tmp").exists());
}

#[test]
fn writes_at_offsets_truncate_and_extend_follow_the_model() {
    let mut f = Fixture::new();
    let path = f.p("data");
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(&path)
        .unwrap();
    let base: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    file.write_all_at(&base, 0).unwrap();
    file.sync_all().unwrap();
    // Unsynced: a write past the end leaving a hole, a write in the middle, a truncate.
    file.write_all_at(b"END", 20_000).unwrap();
    file.write_all_at(b"mid", 5_000).unwrap();
    let mut seen = vec![0u8; 3];
    file.read_exact_at(&mut seen, 5_000).unwrap();
    assert_eq!(&seen, b"mid");
    let mut hole = vec![1u8; 100];
    file.read_exact_at(&mut hole, 15_000).unwrap();
    assert!(hole.iter().all(|&b| b == 0), "a hole reads as zeros");
    assert_eq!(file.metadata().unwrap().len(), 20_003);
    file.set_len(4_000).unwrap();
    file.set_len(8_000).unwrap();
    let mut tail = vec![1u8; 4_000];
    file.read_exact_at(&mut tail, 4_000).unwrap();
    assert!(
        tail.iter().all(|&b| b == 0),
        "bytes cut by a truncate read as zeros after extending"
    );
    drop(file);
    let dropped = f.cut();
    assert_eq!(dropped.files, 1, "{dropped:?}");
    assert_eq!(
        fs::read(&path).unwrap(),
        base,
        "the synced contents, all of it"
    );

    // The same, fsynced: kept exactly.
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .unwrap();
    file.set_len(4_000).unwrap();
    file.set_len(8_000).unwrap();
    file.write_all_at(b"xyz", 6_000).unwrap();
    file.sync_data().unwrap();
    drop(file);
    f.cut();
    let got = fs::read(&path).unwrap();
    let mut want = base[..4_000].to_vec();
    want.resize(8_000, 0);
    want[6_000..6_003].copy_from_slice(b"xyz");
    assert_eq!(got, want);
}

#[test]
fn readdir_statfs_mmap_and_a_clean_stop_work() {
    let mut f = Fixture::new();
    fs::create_dir_all(f.p("a/b")).unwrap();
    for name in ["z", "y", "x"] {
        write_file(&f.p(&format!("a/{name}")), name.as_bytes(), false);
    }
    let mut names: Vec<String> = fs::read_dir(f.p("a"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["b", "x", "y", "z"]);
    assert!(fs::remove_dir(f.p("a")).is_err(), "not empty");
    let st = nix::sys::statvfs::statvfs(&f.at).unwrap();
    assert!(st.blocks() > 0);

    // A read-only shared mapping (LMDB reads its data file this way) sees what was written.
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(f.p("mapped"))
        .unwrap();
    file.write_all(&[7u8; 8192]).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh read-only shared mapping of a file only this test uses, unmapped below.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            8192,
            libc::PROT_READ,
            libc::MAP_SHARED,
            file.as_raw_fd(),
            0,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "mmap of a lazyfs file");
    file.write_all_at(&[9u8; 10], 4096).unwrap();
    // SAFETY: the mapping is 8192 bytes long and alive until munmap.
    let view = unsafe { std::slice::from_raw_parts(ptr as *const u8, 8192) };
    assert_eq!(view[0], 7);
    assert_eq!(view[4096], 9, "a write shows through the mapping");
    // SAFETY: unmapping what was mapped above.
    assert_eq!(unsafe { libc::munmap(ptr, 8192) }, 0);
    let mut s = String::new();
    File::open(f.p("a/x"))
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert_eq!(s, "x");

    // A clean stop (the harness done, not a cut) keeps everything.
    f.mount.take().unwrap().stop();
    f.assert_gone();
    assert_eq!(fs::read(f.backing.join("a/x")).unwrap(), b"x");
    assert!(f.backing.join("a/b").is_dir());
    f.mount();
    assert_eq!(fs::read(f.p("a/y")).unwrap(), b"y");
}

/// A mount whose server and fusermount3 both died without unmounting (a harness killed at the
/// worst moment) is found and unmounted by the sweep every power-loss run starts with.
#[test]
fn the_sweep_unmounts_a_mount_whose_server_is_dead() {
    let mut f = Fixture::new();
    let helpers = quorate::lazyfs::mount::helpers_of(&f.at);
    // fusermount3 first, so it cannot unmount when the server dies.
    let mut sorted = helpers.clone();
    sorted.sort_by_key(|p| *p != f.mount.as_ref().unwrap().pid().unwrap());
    for pid in sorted.iter().rev() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !quorate::lazyfs::mount::helpers_of(&f.at).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "not dead: {helpers:?}"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(
        is_mounted(&f.at),
        "left mounted, as after a harness killed mid-run"
    );
    let swept = quorate::lazyfs::mount::sweep_stale();
    assert!(
        swept.iter().any(|p| p.ends_with("data")),
        "{swept:?} does not name {}",
        f.at.display()
    );
    assert!(!is_mounted(&f.at));
    // The Mount's own stop finds nothing left to do.
    f.mount.take().unwrap().stop();
}
