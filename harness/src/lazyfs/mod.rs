//! lazyfs: a FUSE file system that loses what was not fsynced, for the `power-loss` fault
//! (Jepsen does this with lazyfs; this is quorate's own, on the `fuser` crate).
//!
//! A member's data directory is a mount of this file system, served by `quorate lazyfs` (a
//! hidden subcommand: its own process, so it outlives a SIGKILLed member) over a *backing
//! directory*. The backing directory only ever holds what is durable; everything else lives in
//! the server's memory. A power cut ([`mount::Mount::cut`]) ends the server without writing
//! anything: what was not durable is gone, and the next mount serves the backing directory as
//! it is, with empty kernel caches (a remount, as after a reboot).
//!
//! # The durability model
//! - **File data.** A write (at any offset), a truncate, an extending fallocate change only the
//!   server's memory (4 KiB pages). They become durable when that file is fsynced
//!   (`fsync` or `fdatasync`, which are the same here: a file's size counts as its data), and
//!   only then: nothing is ever written back without an fsync (no 30 s writeback as a kernel
//!   would do; the harshest case, as lazyfs's). Closing a file makes nothing durable.
//! - **Metadata.** create, mkdir, unlink, rmdir, rename and chmod change the namespace the
//!   member sees at once and are appended to a journal. The journal is committed — replayed on
//!   the backing directory in order, then each backing directory it touched fsynced — by
//!   *any* fsync: of a file, of a directory (`fsyncdir`), or the final sync. So, as with
//!   ext4's journal, an fsync makes every metadata operation done before it durable, across the
//!   whole file system, in the order done; a cut keeps a prefix of the journal (exactly what was
//!   committed) and drops the rest. Nothing else commits it.
//! - **fsync of a file** = commit the journal (the file's own creation and name included), then
//!   its data. It does not make other files' data durable.
//! - **fsync of a directory** = commit the journal; no file's data.
//! - So a file created and written but never fsynced is lost (or, if some fsync committed its
//!   creation, comes back empty); a rename not followed by any fsync is undone; a rename of a
//!   file whose data was never fsynced, followed by an fsync of the directory, leaves the new
//!   name holding whatever of the data was durable (ext4 without `auto_da_alloc`'s rescue).
//! - `sync(2)` and `syncfs(2)` do not reach a FUSE file system and make nothing durable.
//!   Timestamps are kept in memory only. Hard links, symlinks and special files are refused
//!   (EPERM); extended attributes are not kept (none exists, setting one is refused); files
//!   are not locked by the server (the kernel keeps `flock`/`fcntl` locks
//!   locally). Unsynced data is capped at [`model::DIRTY_LIMIT`]; a write past it fails with
//!   ENOSPC.
//! - mmap works through the kernel's page cache (no direct I/O): a shared writable mapping's
//!   pages reach the server as writes when the kernel writes them back, and are unsynced data
//!   like any other until an fsync.
//! - A failure to commit to the backing directory (a full disk) makes the mount fail every
//!   later call with EIO: the durable state no longer follows the model, so nothing is served.
//!
//! # Files
//! [`model`]: the state and the model, no FUSE. This file: the FUSE calls on it and
//! [`serve`], the server's main. [`mount`]: the harness's side (start, cut, stop, sweep).

pub mod model;
pub mod mount;

use fuser::{
    Errno, FileAttr, FileHandle, FileType, Filesystem, FopenFlags, Generation, INodeNo, LockOwner,
    OpenFlags, RenameFlags, ReplyAttr, ReplyCreate, ReplyData, ReplyDirectory, ReplyEmpty,
    ReplyEntry, ReplyOpen, ReplyStatfs, ReplyWrite, Request, TimeOrNow, WriteFlags,
};
use model::{Kind, Res, State};
use std::ffi::OsStr;
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How long the kernel may cache attributes and names. Nothing changes the files behind the
/// kernel's back while mounted (a cut remounts), so caching is safe.
const TTL: Duration = Duration::from_secs(1);

/// The file system's name in `/proc/self/mountinfo`: `quorate-lazyfs-<server pid>`, so a sweep
/// can tell a dead server's mount.
pub const FS_NAME: &str = "quorate-lazyfs";

pub struct LazyFs {
    state: Arc<Mutex<State>>,
}

fn errno(e: i32) -> Errno {
    Errno::from_i32(e)
}

impl LazyFs {
    fn attr(st: &State, ino: u64) -> Res<FileAttr> {
        let i = st.inode(ino)?;
        let (kind, size, nlink) = match &i.kind {
            Kind::Dir(e) => (FileType::Directory, 4096, 2 + e.len() as u32),
            Kind::File(f) => (FileType::RegularFile, f.size, u32::from(i.parent != 0)),
        };
        Ok(FileAttr {
            ino: INodeNo(ino),
            size,
            blocks: size.div_ceil(512),
            atime: i.mtime,
            mtime: i.mtime,
            ctime: i.ctime,
            crtime: i.ctime,
            kind,
            perm: i.perm,
            nlink,
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
            rdev: 0,
            blksize: model::PAGE as u32,
            flags: 0,
        })
    }

    fn with<T>(&self, f: impl FnOnce(&mut State) -> Res<T>) -> Res<T> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut st)
    }

    fn entry(&self, reply: ReplyEntry, f: impl FnOnce(&mut State) -> Res<u64>) {
        match self.with(|st| {
            let ino = f(st)?;
            Self::attr(st, ino)
        }) {
            Ok(a) => reply.entry(&TTL, &a, Generation(0)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn empty(&self, reply: ReplyEmpty, f: impl FnOnce(&mut State) -> Res<()>) {
        match self.with(f) {
            Ok(()) => reply.ok(),
            Err(e) => reply.error(errno(e)),
        }
    }
}

fn perm_of(mode: u32, umask: u32) -> u16 {
    (mode & !umask & 0o7777) as u16
}

impl Filesystem for LazyFs {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        self.entry(reply, |st| st.lookup(parent.0, name));
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        let _ = self.with(|st| {
            st.forget(ino.0, nlookup);
            Ok(())
        });
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        match self.with(|st| Self::attr(st, ino.0)) {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let r = self.with(|st| {
            if let Some(size) = size {
                st.truncate(ino.0, size)?;
            }
            if let Some(mode) = mode {
                st.chmod(ino.0, (mode & 0o7777) as u16)?;
            }
            if let Some(t) = mtime {
                let t = match t {
                    TimeOrNow::SpecificTime(t) => t,
                    TimeOrNow::Now => SystemTime::now(),
                };
                st.set_mtime(ino.0, t)?;
            }
            Self::attr(st, ino.0)
        });
        match r {
            Ok(a) => reply.attr(&TTL, &a),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn mknod(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _rdev: u32,
        reply: ReplyEntry,
    ) {
        if mode & libc::S_IFMT != libc::S_IFREG {
            reply.error(Errno::EPERM);
            return;
        }
        self.entry(reply, |st| st.create(parent.0, name, perm_of(mode, umask)));
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        self.entry(reply, |st| st.mkdir(parent.0, name, perm_of(mode, umask)));
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| st.unlink(parent.0, name));
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.empty(reply, |st| st.rmdir(parent.0, name));
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !(flags - RenameFlags::RENAME_NOREPLACE).is_empty() {
            reply.error(Errno::EINVAL);
            return;
        }
        let noreplace = flags.contains(RenameFlags::RENAME_NOREPLACE);
        self.empty(reply, |st| {
            st.rename(parent.0, name, newparent.0, newname, noreplace)
        });
    }

    fn open(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|st| st.inode(ino.0).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn read(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        match self.with(|st| st.read(ino.0, offset, size)) {
            Ok(d) => reply.data(&d),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        match self.with(|st| st.write(ino.0, offset, data)) {
            Ok(n) => reply.written(n),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| st.fsync(ino.0));
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.with(|st| st.readdir(ino.0).map(|_| ())) {
            Ok(()) => reply.opened(FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        match self.with(|st| st.readdir(ino.0)) {
            Ok(entries) => {
                for (i, (child, is_dir, name)) in
                    entries.into_iter().enumerate().skip(offset as usize)
                {
                    let kind = if is_dir {
                        FileType::Directory
                    } else {
                        FileType::RegularFile
                    };
                    if reply.add(INodeNo(child), i as u64 + 1, kind, &name) {
                        break;
                    }
                }
                reply.ok();
            }
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.empty(reply, |st| st.fsyncdir());
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        let backing = self.with(|st| Ok(st.backing.clone())).expect("infallible");
        match nix::sys::statvfs::statvfs(&backing) {
            Ok(s) => reply.statfs(
                s.blocks(),
                s.blocks_free(),
                s.blocks_available(),
                s.files(),
                s.files_free(),
                s.block_size() as u32,
                255,
                s.fragment_size() as u32,
            ),
            Err(e) => reply.error(errno(e as i32)),
        }
    }

    fn access(&self, _req: &Request, ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        self.empty(reply, |st| st.inode(ino.0).map(|_| ()));
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        match self.with(|st| {
            let ino = st.create(parent.0, name, perm_of(mode, umask))?;
            Self::attr(st, ino)
        }) {
            Ok(a) => reply.created(&TTL, &a, Generation(0), FileHandle(0), FopenFlags::empty()),
            Err(e) => reply.error(errno(e)),
        }
    }

    /// No extended attributes are kept (the kernel asks for `security.capability` on every
    /// write): none exists.
    fn getxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        _name: &OsStr,
        _size: u32,
        reply: fuser::ReplyXattr,
    ) {
        match self.with(|st| st.inode(ino.0).map(|_| ())) {
            Ok(()) => reply.error(Errno::from_i32(libc::ENODATA)),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn listxattr(&self, _req: &Request, ino: INodeNo, size: u32, reply: fuser::ReplyXattr) {
        match self.with(|st| st.inode(ino.0).map(|_| ())) {
            Ok(()) if size == 0 => reply.size(0),
            Ok(()) => reply.data(&[]),
            Err(e) => reply.error(errno(e)),
        }
    }

    fn fallocate(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        if mode != 0 {
            reply.error(Errno::from_i32(libc::EOPNOTSUPP));
            return;
        }
        self.empty(reply, |st| st.allocate(ino.0, offset, length));
    }
}

/// `quorate lazyfs --backing DIR --mount DIR`: serve `backing` at `mount` until told to stop.
///
/// The harness drives it through stdin and stdout, one line each way:
/// - once mounted, it prints `ready`;
/// - `stats` → one JSON line, [`model::Unsynced`] (what a cut would drop now);
/// - `sync` → that JSON line, then everything is committed and synced (a checkpoint: what
///   the members wrote so far survives later cuts); `{"error": …}` if that failed;
/// - `cut` → that JSON line, then it exits at once, unmounting without writing anything
///   (the power cut);
/// - end of input (the harness closed the pipe or died) → a clean shutdown: everything is
///   committed and synced, then it unmounts and exits.
///
/// Mounted with `auto_unmount`, so `fusermount3` unmounts even if this process is killed.
pub fn serve(backing: &Path, mountpoint: &Path) -> anyhow::Result<()> {
    use anyhow::Context;
    raise_fd_limit();
    let state = State::load(backing).with_context(|| {
        format!(
            "lazyfs: loading the backing directory {}",
            backing.display()
        )
    })?;
    let state = Arc::new(Mutex::new(state));
    let fs = LazyFs {
        state: state.clone(),
    };
    let mut cfg = fuser::Config::default();
    cfg.mount_options = vec![
        fuser::MountOption::FSName(format!("{FS_NAME}-{}", std::process::id())),
        fuser::MountOption::Subtype(FS_NAME.to_string()),
        fuser::MountOption::AutoUnmount,
    ];
    cfg.acl = fuser::SessionACL::All;
    let session = fuser::spawn_mount(fs, mountpoint, &cfg)
        .with_context(|| format!("lazyfs: mounting {}", mountpoint.display()))?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "ready")?;
    out.flush()?;
    let stdin = std::io::stdin().lock();
    for line in stdin.lines() {
        let line = line.unwrap_or_default();
        let unsynced = {
            let st = state.lock().unwrap_or_else(|p| p.into_inner());
            st.unsynced()
        };
        match line.trim() {
            "stats" => {
                writeln!(out, "{}", serde_json::to_string(&unsynced)?)?;
                out.flush()?;
            }
            "sync" => {
                let synced = state.lock().unwrap_or_else(|p| p.into_inner()).sync_all();
                match synced {
                    Ok(()) => writeln!(out, "{}", serde_json::to_string(&unsynced)?)?,
                    Err(e) => writeln!(out, "{{\"error\": \"sync failed: errno {e}\"}}")?,
                }
                out.flush()?;
            }
            "cut" => {
                writeln!(out, "{}", serde_json::to_string(&unsynced)?)?;
                out.flush()?;
                // The power cut: no commit, no write. Exiting closes the FUSE device, and
                // auto_unmount's fusermount3 unmounts; the kernel's caches go with the mount.
                std::process::exit(0);
            }
            other => {
                writeln!(out, "{{\"error\": \"unknown command {other:?}\"}}")?;
                out.flush()?;
            }
        }
    }
    // The harness is gone or done: a clean shutdown keeps everything.
    let synced = {
        let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
        st.sync_all()
    };
    drop(session);
    if synced.is_err() {
        anyhow::bail!("lazyfs: the final sync of {} failed", backing.display());
    }
    Ok(())
}

/// Every file of the backing directory is held open; lift the soft limit on descriptors to
/// the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// `quorate lazyfs` (hidden: the harness starts it, see [`mount`]).
#[derive(clap::Args, Debug)]
pub struct LazyfsArgs {
    /// The directory holding what is durable.
    #[arg(long)]
    pub backing: std::path::PathBuf,
    /// Where to mount it.
    #[arg(long)]
    pub mount: std::path::PathBuf,
}

pub fn main(args: LazyfsArgs) -> u8 {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    match serve(&args.backing, &args.mount) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            3
        }
    }
}
