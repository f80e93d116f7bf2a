//! The file system's state and its durability model, with no FUSE in it: the namespace and
//! file contents a member sees (volatile), the journal of metadata operations not yet
//! durable, and the backing directory, which holds exactly what survives a power cut.
//!
//! See the module note of [`super`] for the model in words; every rule there is implemented
//! here, and `harness/tests/lazyfs.rs` checks it on a real mount.

use std::collections::{BTreeMap, HashMap};
use std::ffi::{OsStr, OsString};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The unit of unsynced data kept in memory.
pub const PAGE: u64 = 4096;
/// The most unsynced data held at once; a write beyond it fails with ENOSPC (and says so in
/// the server's log) rather than exhausting the machine's memory.
pub const DIRTY_LIMIT: u64 = 1 << 30;
pub const ROOT: u64 = 1;

pub type Res<T> = Result<T, i32>;

fn io_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(libc::EIO)
}

/// A file's contents: what is durable (`base`, its first `base_len` bytes still visible) and
/// the pages written since the file was last fsynced.
pub struct FileData {
    /// The durable file in the backing directory, open for as long as the inode lives (so a
    /// rename or unlink in the backing directory does not lose it). `None` until the file's
    /// creation is committed.
    pub base: Option<File>,
    /// How many leading bytes of `base` the member still sees (a truncation hides the rest).
    pub base_len: u64,
    /// The size the member sees.
    pub size: u64,
    /// Unsynced pages, by page index; bytes past `size` are zero.
    pub dirty: BTreeMap<u64, Box<[u8]>>,
    /// The size changed since the last fsync (a truncate or an extending write).
    pub size_dirty: bool,
}

pub enum Kind {
    Dir(BTreeMap<OsString, u64>),
    File(FileData),
}

pub struct Inode {
    /// The directory holding it; 0 once it is unlinked (kept while the kernel still knows it).
    pub parent: u64,
    pub name: OsString,
    pub kind: Kind,
    pub perm: u16,
    pub mtime: SystemTime,
    pub ctime: SystemTime,
    /// Lookups the kernel holds ([`State::forget`]).
    pub lookups: u64,
}

/// A metadata operation the member did that is not durable yet, with the paths it had then
/// (relative to the mount's root).
#[derive(Debug, Clone)]
pub enum MetaOp {
    Mkdir(PathBuf, u16),
    Create(PathBuf, u64, u16),
    Unlink(PathBuf),
    Rmdir(PathBuf),
    Rename(PathBuf, PathBuf, bool),
    Chmod(PathBuf, u16),
}

impl MetaOp {
    pub fn describe(&self) -> String {
        match self {
            MetaOp::Mkdir(p, _) => format!("mkdir {}", p.display()),
            MetaOp::Create(p, _, _) => format!("create {}", p.display()),
            MetaOp::Unlink(p) => format!("unlink {}", p.display()),
            MetaOp::Rmdir(p) => format!("rmdir {}", p.display()),
            MetaOp::Rename(a, b, _) => format!("rename {} -> {}", a.display(), b.display()),
            MetaOp::Chmod(p, m) => format!("chmod {:o} {}", m, p.display()),
        }
    }
}

/// What a cut drops (and what `stats` reports while the mount runs).
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize, PartialEq)]
pub struct Unsynced {
    /// Bytes of unsynced file data (dirty pages, up to each file's size).
    pub bytes: u64,
    /// Files with unsynced data or an unsynced size.
    pub files: u64,
    /// Metadata operations not yet committed (creates, mkdirs, renames, unlinks, rmdirs,
    /// chmods).
    pub metadata_ops: u64,
    /// The first of them, in order, as `"rename a -> b"` (at most 20).
    pub first_ops: Vec<String>,
    /// fsync and fsyncdir calls served since the mount began (a checkpoint counts one per
    /// file it synced).
    pub fsyncs: u64,
}

pub struct State {
    pub backing: PathBuf,
    pub inodes: HashMap<u64, Inode>,
    next_ino: u64,
    pub journal: Vec<MetaOp>,
    dirty_bytes: u64,
    fsyncs: u64,
    /// Set when committing to the backing directory failed: every later call fails with EIO,
    /// since the durable state no longer follows the model.
    pub broken: Option<String>,
}

impl State {
    /// Load the backing directory as the durable and the visible state at once.
    pub fn load(backing: &Path) -> io::Result<State> {
        let now = SystemTime::now();
        let meta = std::fs::metadata(backing)?;
        let mut st = State {
            backing: backing.to_path_buf(),
            inodes: HashMap::new(),
            next_ino: ROOT + 1,
            journal: Vec::new(),
            dirty_bytes: 0,
            fsyncs: 0,
            broken: None,
        };
        st.inodes.insert(
            ROOT,
            Inode {
                parent: ROOT,
                name: OsString::new(),
                kind: Kind::Dir(BTreeMap::new()),
                perm: (meta.mode() & 0o7777) as u16,
                mtime: meta.modified().unwrap_or(now),
                ctime: now,
                lookups: 1,
            },
        );
        st.scan(ROOT, backing)?;
        Ok(st)
    }

    fn scan(&mut self, dir_ino: u64, dir: &Path) -> io::Result<()> {
        let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path();
            let meta = std::fs::symlink_metadata(&path)?;
            let perm = (meta.mode() & 0o7777) as u16;
            let mtime = meta.modified().unwrap_or(SystemTime::now());
            let kind = if meta.is_dir() {
                Kind::Dir(BTreeMap::new())
            } else if meta.is_file() {
                let f = OpenOptions::new().read(true).write(true).open(&path)?;
                Kind::File(FileData {
                    base: Some(f),
                    base_len: meta.len(),
                    size: meta.len(),
                    dirty: BTreeMap::new(),
                    size_dirty: false,
                })
            } else {
                return Err(io::Error::other(format!(
                    "{}: only files and directories can be served",
                    path.display()
                )));
            };
            let is_dir = matches!(kind, Kind::Dir(_));
            let ino = self.add(dir_ino, e.file_name(), kind, perm, mtime);
            if is_dir {
                self.scan(ino, &path)?;
            }
        }
        Ok(())
    }

    fn add(
        &mut self,
        parent: u64,
        name: OsString,
        kind: Kind,
        perm: u16,
        mtime: SystemTime,
    ) -> u64 {
        let ino = self.next_ino;
        self.next_ino += 1;
        self.inodes.insert(
            ino,
            Inode {
                parent,
                name: name.clone(),
                kind,
                perm,
                mtime,
                ctime: mtime,
                lookups: 0,
            },
        );
        if let Some(Kind::Dir(entries)) = self.inodes.get_mut(&parent).map(|i| &mut i.kind) {
            entries.insert(name, ino);
        }
        ino
    }

    fn check(&self) -> Res<()> {
        match self.broken {
            Some(_) => Err(libc::EIO),
            None => Ok(()),
        }
    }

    pub fn inode(&self, ino: u64) -> Res<&Inode> {
        self.inodes.get(&ino).ok_or(libc::ENOENT)
    }

    fn entries(&self, dir: u64) -> Res<&BTreeMap<OsString, u64>> {
        match &self.inode(dir)?.kind {
            Kind::Dir(e) => Ok(e),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn entries_mut(&mut self, dir: u64) -> Res<&mut BTreeMap<OsString, u64>> {
        match &mut self.inodes.get_mut(&dir).ok_or(libc::ENOENT)?.kind {
            Kind::Dir(e) => Ok(e),
            Kind::File(_) => Err(libc::ENOTDIR),
        }
    }

    fn file_mut(&mut self, ino: u64) -> Res<&mut FileData> {
        match &mut self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?.kind {
            Kind::File(f) => Ok(f),
            Kind::Dir(_) => Err(libc::EISDIR),
        }
    }

    /// The path of a linked inode, relative to the root.
    pub fn path(&self, mut ino: u64) -> PathBuf {
        let mut parts = Vec::new();
        while ino != ROOT {
            let Some(i) = self.inodes.get(&ino) else {
                break;
            };
            parts.push(i.name.clone());
            ino = i.parent;
        }
        parts.iter().rev().collect()
    }

    fn child_path(&self, parent: u64, name: &OsStr) -> PathBuf {
        self.path(parent).join(name)
    }

    pub fn lookup(&mut self, parent: u64, name: &OsStr) -> Res<u64> {
        self.check()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.inodes.get_mut(&ino).expect("entry's inode").lookups += 1;
        Ok(ino)
    }

    /// The kernel forgets `n` lookups; an unlinked inode nobody knows any more is dropped.
    pub fn forget(&mut self, ino: u64, n: u64) {
        if ino == ROOT {
            return;
        }
        let drop = match self.inodes.get_mut(&ino) {
            Some(i) => {
                i.lookups = i.lookups.saturating_sub(n);
                i.lookups == 0 && i.parent == 0
            }
            None => false,
        };
        if drop {
            self.remove_inode(ino);
        }
    }

    fn remove_inode(&mut self, ino: u64) {
        if let Some(Inode {
            kind: Kind::File(f),
            ..
        }) = self.inodes.remove(&ino)
        {
            self.dirty_bytes -= f.dirty.len() as u64 * PAGE;
        }
    }

    fn new_name(&self, parent: u64, name: &OsStr) -> Res<()> {
        if name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        if self.entries(parent)?.contains_key(name) {
            return Err(libc::EEXIST);
        }
        Ok(())
    }

    pub fn mkdir(&mut self, parent: u64, name: &OsStr, perm: u16) -> Res<u64> {
        self.check()?;
        self.new_name(parent, name)?;
        let path = self.child_path(parent, name);
        let now = SystemTime::now();
        let ino = self.add(
            parent,
            name.to_owned(),
            Kind::Dir(BTreeMap::new()),
            perm,
            now,
        );
        self.inodes.get_mut(&ino).expect("new").lookups = 1;
        self.touch(parent);
        self.journal.push(MetaOp::Mkdir(path, perm));
        Ok(ino)
    }

    pub fn create(&mut self, parent: u64, name: &OsStr, perm: u16) -> Res<u64> {
        self.check()?;
        self.new_name(parent, name)?;
        let path = self.child_path(parent, name);
        let now = SystemTime::now();
        let data = FileData {
            base: None,
            base_len: 0,
            size: 0,
            dirty: BTreeMap::new(),
            size_dirty: true,
        };
        let ino = self.add(parent, name.to_owned(), Kind::File(data), perm, now);
        self.inodes.get_mut(&ino).expect("new").lookups = 1;
        self.touch(parent);
        self.journal.push(MetaOp::Create(path, ino, perm));
        Ok(ino)
    }

    fn touch(&mut self, ino: u64) {
        if let Some(i) = self.inodes.get_mut(&ino) {
            let now = SystemTime::now();
            i.mtime = now;
            i.ctime = now;
        }
    }

    fn unlink_entry(&mut self, parent: u64, name: &OsStr) -> u64 {
        let ino = self
            .entries_mut(parent)
            .ok()
            .and_then(|e| e.remove(name))
            .expect("checked entry");
        let gone = {
            let i = self.inodes.get_mut(&ino).expect("entry's inode");
            i.parent = 0;
            i.ctime = SystemTime::now();
            i.lookups == 0
        };
        if gone {
            self.remove_inode(ino);
        }
        self.touch(parent);
        ino
    }

    pub fn unlink(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.check()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        if matches!(self.inode(ino)?.kind, Kind::Dir(_)) {
            return Err(libc::EISDIR);
        }
        let path = self.child_path(parent, name);
        self.unlink_entry(parent, name);
        self.journal.push(MetaOp::Unlink(path));
        Ok(())
    }

    pub fn rmdir(&mut self, parent: u64, name: &OsStr) -> Res<()> {
        self.check()?;
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        if !self.entries(ino)?.is_empty() {
            return Err(libc::ENOTEMPTY);
        }
        let path = self.child_path(parent, name);
        self.unlink_entry(parent, name);
        self.journal.push(MetaOp::Rmdir(path));
        Ok(())
    }

    /// rename(2), with `noreplace` for RENAME_NOREPLACE (other flags are refused by the
    /// caller).
    pub fn rename(
        &mut self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        noreplace: bool,
    ) -> Res<()> {
        self.check()?;
        if new_name.len() > 255 {
            return Err(libc::ENAMETOOLONG);
        }
        let ino = *self.entries(parent)?.get(name).ok_or(libc::ENOENT)?;
        self.entries(new_parent)?;
        let src_dir = matches!(self.inode(ino)?.kind, Kind::Dir(_));
        // A directory cannot move into itself or below itself.
        if src_dir {
            let mut p = new_parent;
            loop {
                if p == ino {
                    return Err(libc::EINVAL);
                }
                if p == ROOT || p == 0 {
                    break;
                }
                p = self.inode(p)?.parent;
            }
        }
        if let Some(&target) = self.entries(new_parent)?.get(new_name) {
            if target == ino {
                return Ok(());
            }
            if noreplace {
                return Err(libc::EEXIST);
            }
            match (&self.inode(target)?.kind, src_dir) {
                (Kind::Dir(e), true) if !e.is_empty() => return Err(libc::ENOTEMPTY),
                (Kind::Dir(_), false) => return Err(libc::EISDIR),
                (Kind::File(_), true) => return Err(libc::ENOTDIR),
                _ => {}
            }
        }
        let from = self.child_path(parent, name);
        let to = self.child_path(new_parent, new_name);
        if self.entries(new_parent)?.contains_key(new_name) {
            self.unlink_entry(new_parent, new_name);
        }
        self.entries_mut(parent)?.remove(name);
        self.entries_mut(new_parent)?
            .insert(new_name.to_owned(), ino);
        {
            let i = self.inodes.get_mut(&ino).expect("renamed inode");
            i.parent = new_parent;
            i.name = new_name.to_owned();
            i.ctime = SystemTime::now();
        }
        self.touch(parent);
        self.touch(new_parent);
        self.journal.push(MetaOp::Rename(from, to, noreplace));
        Ok(())
    }

    pub fn chmod(&mut self, ino: u64, perm: u16) -> Res<()> {
        self.check()?;
        let i = self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        i.perm = perm;
        i.ctime = SystemTime::now();
        if i.parent != 0 && ino != ROOT {
            let path = self.path(ino);
            self.journal.push(MetaOp::Chmod(path, perm));
        }
        Ok(())
    }

    pub fn set_mtime(&mut self, ino: u64, t: SystemTime) -> Res<()> {
        let i = self.inodes.get_mut(&ino).ok_or(libc::ENOENT)?;
        i.mtime = t;
        Ok(())
    }

    /// One page as the member sees it now.
    fn page(f: &FileData, idx: u64) -> Res<Box<[u8]>> {
        if let Some(p) = f.dirty.get(&idx) {
            return Ok(p.clone());
        }
        let mut buf = vec![0u8; PAGE as usize].into_boxed_slice();
        let off = idx * PAGE;
        if off < f.base_len {
            let n = (f.base_len - off).min(PAGE) as usize;
            let base = f.base.as_ref().expect("base_len > 0 means a base");
            base.read_exact_at(&mut buf[..n], off)
                .map_err(|e| io_errno(&e))?;
        }
        Ok(buf)
    }

    pub fn read(&self, ino: u64, off: u64, len: u32) -> Res<Vec<u8>> {
        self.check()?;
        let f = match &self.inode(ino)?.kind {
            Kind::File(f) => f,
            Kind::Dir(_) => return Err(libc::EISDIR),
        };
        let end = (off + len as u64).min(f.size);
        let mut out = Vec::with_capacity(end.saturating_sub(off) as usize);
        let mut pos = off;
        while pos < end {
            let idx = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let take = ((PAGE - pos % PAGE).min(end - pos)) as usize;
            let page = Self::page(f, idx)?;
            out.extend_from_slice(&page[in_page..in_page + take]);
            pos += take as u64;
        }
        Ok(out)
    }

    pub fn write(&mut self, ino: u64, off: u64, data: &[u8]) -> Res<u32> {
        self.check()?;
        let end = off.checked_add(data.len() as u64).ok_or(libc::EFBIG)?;
        let new_pages = {
            let f = self.file_mut(ino)?;
            (off / PAGE..end.div_ceil(PAGE))
                .filter(|i| !f.dirty.contains_key(i))
                .count() as u64
        };
        if self.dirty_bytes + new_pages * PAGE > DIRTY_LIMIT {
            tracing::error!(
                "lazyfs: {} bytes of unsynced data held already; refusing more (ENOSPC)",
                self.dirty_bytes
            );
            return Err(libc::ENOSPC);
        }
        self.dirty_bytes += new_pages * PAGE;
        let f = self.file_mut(ino)?;
        let mut pos = off;
        let mut src = data;
        while !src.is_empty() {
            let idx = pos / PAGE;
            let in_page = (pos % PAGE) as usize;
            let take = (PAGE as usize - in_page).min(src.len());
            if !f.dirty.contains_key(&idx) {
                let p = Self::page(f, idx)?;
                f.dirty.insert(idx, p);
            }
            let page = f.dirty.get_mut(&idx).expect("just inserted");
            page[in_page..in_page + take].copy_from_slice(&src[..take]);
            pos += take as u64;
            src = &src[take..];
        }
        if end > f.size {
            f.size = end;
            f.size_dirty = true;
        }
        self.touch(ino);
        Ok(data.len() as u32)
    }

    /// ftruncate/truncate: the new size is unsynced data, like a write.
    pub fn truncate(&mut self, ino: u64, size: u64) -> Res<()> {
        self.check()?;
        let f = self.file_mut(ino)?;
        if size < f.size {
            let keep = size.div_ceil(PAGE);
            let dropped: Vec<u64> = f.dirty.range(keep..).map(|(k, _)| *k).collect();
            for k in &dropped {
                f.dirty.remove(k);
            }
            let freed = dropped.len() as u64 * PAGE;
            let mut added = 0;
            if !size.is_multiple_of(PAGE) {
                let idx = size / PAGE;
                if !f.dirty.contains_key(&idx) && idx * PAGE < f.base_len {
                    let p = Self::page(f, idx)?;
                    f.dirty.insert(idx, p);
                    added = PAGE;
                }
                if let Some(p) = f.dirty.get_mut(&idx) {
                    p[(size % PAGE) as usize..].fill(0);
                }
            }
            f.base_len = f.base_len.min(size);
            self.dirty_bytes = self.dirty_bytes - freed + added;
        }
        let f = self.file_mut(ino)?;
        if size != f.size {
            f.size = size;
            f.size_dirty = true;
        }
        self.touch(ino);
        Ok(())
    }

    /// fallocate mode 0: the size grows to cover the range (zeros), as unsynced data.
    pub fn allocate(&mut self, ino: u64, off: u64, len: u64) -> Res<()> {
        self.check()?;
        let end = off.checked_add(len).ok_or(libc::EFBIG)?;
        let f = self.file_mut(ino)?;
        if end > f.size {
            f.size = end;
            f.size_dirty = true;
        }
        Ok(())
    }

    /// Commit the journal: replay every pending metadata operation, in order, on the backing
    /// directory, then fsync each backing directory they touched.
    pub fn commit(&mut self) -> Res<()> {
        self.check()?;
        if self.journal.is_empty() {
            return Ok(());
        }
        let ops = std::mem::take(&mut self.journal);
        let mut dirs: Vec<PathBuf> = Vec::new();
        for op in &ops {
            if let Err(e) = self.replay(op, &mut dirs) {
                let why = format!("committing `{}`: {e}", op.describe());
                tracing::error!("lazyfs: {why}; the mount fails every call from now on");
                self.broken = Some(why);
                return Err(libc::EIO);
            }
        }
        dirs.sort();
        dirs.dedup();
        for d in dirs {
            if let Err(e) = File::open(&d).and_then(|f| f.sync_all()) {
                let why = format!("fsync of directory {}: {e}", d.display());
                tracing::error!("lazyfs: {why}");
                self.broken = Some(why);
                return Err(libc::EIO);
            }
        }
        Ok(())
    }

    fn replay(&mut self, op: &MetaOp, dirs: &mut Vec<PathBuf>) -> io::Result<()> {
        let at = |p: &Path| self.backing.join(p);
        let parent_of = |p: &Path| self.backing.join(p.parent().unwrap_or(Path::new("")));
        match op {
            MetaOp::Mkdir(p, perm) => {
                std::fs::create_dir(at(p))?;
                std::fs::set_permissions(at(p), PermissionsExt::from_mode(*perm as u32))?;
                dirs.push(parent_of(p));
            }
            MetaOp::Create(p, ino, perm) => {
                let f = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(*perm as u32)
                    .open(at(p))?;
                dirs.push(parent_of(p));
                if let Some(Inode {
                    kind: Kind::File(data),
                    ..
                }) = self.inodes.get_mut(ino)
                {
                    if data.base.is_none() {
                        data.base = Some(f);
                        data.base_len = 0;
                    }
                }
            }
            MetaOp::Unlink(p) => {
                std::fs::remove_file(at(p))?;
                dirs.push(parent_of(p));
            }
            MetaOp::Rmdir(p) => {
                std::fs::remove_dir(at(p))?;
                dirs.push(parent_of(p));
            }
            MetaOp::Rename(a, b, noreplace) => {
                if *noreplace && std::fs::symlink_metadata(at(b)).is_ok() {
                    return Err(io::Error::from_raw_os_error(libc::EEXIST));
                }
                std::fs::rename(at(a), at(b))?;
                dirs.push(parent_of(a));
                dirs.push(parent_of(b));
            }
            MetaOp::Chmod(p, perm) => {
                std::fs::set_permissions(at(p), PermissionsExt::from_mode(*perm as u32))?;
            }
        }
        Ok(())
    }

    /// fsync/fdatasync of a file: commit the journal (every metadata operation before it,
    /// the file's own creation included), then write the file's unsynced pages and size to
    /// its durable file and fsync that.
    pub fn fsync(&mut self, ino: u64) -> Res<()> {
        self.check()?;
        self.fsyncs += 1;
        self.commit()?;
        let f = self.file_mut(ino)?;
        if f.dirty.is_empty() && !f.size_dirty {
            return Ok(());
        }
        let Some(base) = f.base.as_ref() else {
            // Its creation was committed just now, unless it was created and unlinked before
            // any commit: then there is nothing durable to write to, nor any name to find.
            return Ok(());
        };
        let flushed = (|| -> io::Result<()> {
            base.set_len(f.base_len)?;
            base.set_len(f.size)?;
            for (idx, page) in &f.dirty {
                let off = idx * PAGE;
                if off >= f.size {
                    continue;
                }
                let n = (f.size - off).min(PAGE) as usize;
                base.write_all_at(&page[..n], off)?;
            }
            base.sync_all()
        })();
        if let Err(e) = flushed {
            let why = format!("writing a file's data to the backing directory: {e}");
            tracing::error!("lazyfs: {why}");
            self.broken = Some(why);
            return Err(libc::EIO);
        }
        let freed = f.dirty.len() as u64 * PAGE;
        f.dirty.clear();
        f.base_len = f.size;
        f.size_dirty = false;
        self.dirty_bytes -= freed;
        Ok(())
    }

    /// fsync of a directory: commit the journal.
    pub fn fsyncdir(&mut self) -> Res<()> {
        self.check()?;
        self.fsyncs += 1;
        self.commit()
    }

    /// Commit everything: the journal, then every file's data (a clean shutdown).
    pub fn sync_all(&mut self) -> Res<()> {
        self.commit()?;
        let inos: Vec<u64> = self
            .inodes
            .iter()
            .filter(
                |(_, i)| matches!(&i.kind, Kind::File(f) if !f.dirty.is_empty() || f.size_dirty),
            )
            .map(|(k, _)| *k)
            .collect();
        for ino in inos {
            self.fsync(ino)?;
        }
        Ok(())
    }

    /// What a cut would drop now.
    pub fn unsynced(&self) -> Unsynced {
        let mut u = Unsynced {
            metadata_ops: self.journal.len() as u64,
            first_ops: self.journal.iter().take(20).map(MetaOp::describe).collect(),
            fsyncs: self.fsyncs,
            ..Unsynced::default()
        };
        for i in self.inodes.values() {
            if let Kind::File(f) = &i.kind {
                if f.dirty.is_empty() && !f.size_dirty {
                    continue;
                }
                u.files += 1;
                for idx in f.dirty.keys() {
                    let off = idx * PAGE;
                    if off < f.size {
                        u.bytes += (f.size - off).min(PAGE);
                    }
                }
            }
        }
        u
    }

    /// The entries of a directory, `.` and `..` first.
    pub fn readdir(&self, ino: u64) -> Res<Vec<(u64, bool, OsString)>> {
        self.check()?;
        let parent = self.inode(ino)?.parent;
        let mut out = vec![
            (ino, true, OsString::from(".")),
            (
                if parent == 0 { ino } else { parent },
                true,
                OsString::from(".."),
            ),
        ];
        for (name, child) in self.entries(ino)? {
            let is_dir = matches!(self.inode(*child)?.kind, Kind::Dir(_));
            out.push((*child, is_dir, name.clone()));
        }
        Ok(out)
    }
}
