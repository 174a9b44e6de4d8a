//! A fault-injecting, in-memory [`Fs`] for tests (built for this crate's tests and with
//! the `fault-injection` feature).
//!
//! It enforces the durability model of [`crate::fs`] strictly:
//! - every file (inode) has a *current* content, what reads see, and a *durable* content,
//!   the current content at its last successful [`StorageFile::sync_data`];
//! - every directory has *current* entries and *durable* entries, the current ones at its
//!   last successful [`Fs::sync_dir`] (creations, renames and removals of files);
//! - [`FaultyFs::lose_power`] reverts every directory to its durable entries and every file
//!   to its durable content; a file no durable entry names vanishes, and handles opened
//!   before fail from then on (the process that held them is gone).
//!
//! Simplification: directories themselves are created, renamed and removed durably at
//! once; the model covers files and their entries, which is what the log layer relies on.
//!
//! Faults: [`FaultyFs::fail_nth`] makes the n-th next operation of one [`Op`] kind fail,
//! [`FaultyFs::fail_randomly`] makes each one fail with a probability drawn from a seeded
//! generator, so a failing case replays exactly. A failed operation changes nothing,
//! except:
//! - a failed write first writes a random prefix of its bytes (a short write);
//! - a failed `sync_data` drops the file's unsynced bytes (its current content becomes its
//!   durable one), as Linux drops the dirty pages it could not write back; the next
//!   `sync_data` then succeeds, having nothing left to write.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::{Mutex, MutexGuard};

use crate::fs::{FileRef, Fs, FsRef, OpenMode, StorageFile};

/// The kinds of operation a fault can be injected into.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    /// [`Fs::open`], creating or not.
    Open,
    /// [`StorageFile::read_exact_at`] and [`Fs::read`].
    Read,
    /// [`StorageFile::write_all_at`].
    Write,
    /// [`StorageFile::set_len`].
    SetLen,
    /// [`StorageFile::sync_data`].
    Sync,
    /// [`Fs::sync_dir`].
    SyncDir,
    /// [`Fs::rename`].
    Rename,
    /// [`Fs::remove_file`] and [`Fs::remove_dir_all`].
    Remove,
    /// [`Fs::list_dir`].
    ListDir,
    /// [`Fs::create_dir_all`].
    CreateDir,
}

/// The error an injected fault returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fault {
    Kind(io::ErrorKind),
    /// A raw OS error number.
    Os(i32),
}

impl Fault {
    /// I/O error (Linux `EIO`).
    pub const EIO: Fault = Fault::Os(5);
    /// Too many open files (Linux `EMFILE`).
    pub const EMFILE: Fault = Fault::Os(24);
    /// No space left on device (Linux `ENOSPC`).
    pub const ENOSPC: Fault = Fault::Os(28);

    fn error(self) -> io::Error {
        match self {
            Fault::Kind(kind) => io::Error::new(kind, "injected fault"),
            Fault::Os(code) => io::Error::from_raw_os_error(code),
        }
    }
}

#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// When the operation count of the kind reaches this.
    Nth(u64),
    Random(f64),
}

#[derive(Clone, Copy, Debug)]
struct Rule {
    op: Op,
    trigger: Trigger,
    fault: Fault,
}

#[derive(Default)]
struct Inode {
    data: Vec<u8>,
    durable: Vec<u8>,
    modified_ms: i64,
}

#[derive(Default)]
struct Dir {
    entries: BTreeMap<String, u64>,
    durable: BTreeMap<String, u64>,
}

struct State {
    inodes: HashMap<u64, Inode>,
    next_inode: u64,
    dirs: BTreeMap<PathBuf, Dir>,
    /// Bumped by every power loss; handles of an older generation are dead.
    generation: u64,
    rules: Vec<Rule>,
    counts: HashMap<Op, u64>,
    injected: u64,
    rng: u64,
}

impl State {
    /// Counts one operation of kind `op`; fails it if a fault rule says so.
    fn check(&mut self, op: Op) -> io::Result<()> {
        let count = self.counts.entry(op).or_default();
        *count += 1;
        let count = *count;
        for i in 0..self.rules.len() {
            let rule = self.rules[i];
            if rule.op != op {
                continue;
            }
            let fire = match rule.trigger {
                Trigger::Nth(at) => at == count,
                Trigger::Random(p) => self.chance(p),
            };
            if fire {
                if let Trigger::Nth(_) = rule.trigger {
                    self.rules.remove(i);
                }
                self.injected += 1;
                return Err(rule.fault.error());
            }
        }
        Ok(())
    }

    /// SplitMix64: small, seedable, good enough to pick faults.
    fn next_u64(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn chance(&mut self, probability: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < probability
    }

    fn dir(&self, path: &Path) -> io::Result<&Dir> {
        self.dirs.get(path).ok_or_else(|| not_found(path))
    }

    fn dir_mut(&mut self, path: &Path) -> io::Result<&mut Dir> {
        self.dirs.get_mut(path).ok_or_else(|| not_found(path))
    }

    /// The inode `path` names now.
    fn lookup(&self, path: &Path) -> io::Result<u64> {
        let (dir, name) = split(path)?;
        self.dir(dir)?
            .entries
            .get(name)
            .copied()
            .ok_or_else(|| not_found(path))
    }

    /// Moves directory `from` and everything under it to `to`, which must not exist
    /// (durably at once, like every directory change).
    fn rename_dir(&mut self, from: &Path, to: &Path) -> io::Result<()> {
        if self.dirs.contains_key(to) || self.lookup(to).is_ok() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists", to.display()),
            ));
        }
        self.dir(to.parent().unwrap_or(Path::new("/")))?;
        let moved: Vec<PathBuf> = self
            .dirs
            .keys()
            .filter(|d| d.starts_with(from))
            .cloned()
            .collect();
        for old in moved {
            let dir = self.dirs.remove(&old).expect("listed above");
            let rest = old.strip_prefix(from).expect("filtered on the prefix");
            self.dirs.insert(to.join(rest), dir);
        }
        Ok(())
    }

    fn inode(&mut self, id: u64) -> &mut Inode {
        self.inodes
            .get_mut(&id)
            .expect("a live handle's inode exists")
    }
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(
        io::ErrorKind::NotFound,
        format!("{}: not found", path.display()),
    )
}

/// Parent directory and file name of `path`.
fn split(path: &Path) -> io::Result<(&Path, &str)> {
    match (path.parent(), path.file_name().and_then(|n| n.to_str())) {
        (Some(dir), Some(name)) => Ok((dir, name)),
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: not a file path", path.display()),
        )),
    }
}

fn wall_clock_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The fault-injecting in-memory file system. Clones share the same state.
#[derive(Clone)]
pub struct FaultyFs {
    state: Arc<Mutex<State>>,
}

impl fmt::Debug for FaultyFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.state.lock();
        f.debug_struct("FaultyFs")
            .field("files", &state.inodes.len())
            .field("generation", &state.generation)
            .field("faults_injected", &state.injected)
            .finish()
    }
}

impl FaultyFs {
    /// An empty file system (only `/` exists) whose random faults follow `seed`.
    pub fn new(seed: u64) -> FaultyFs {
        let mut dirs = BTreeMap::new();
        dirs.insert(PathBuf::from("/"), Dir::default());
        FaultyFs {
            state: Arc::new(Mutex::new(State {
                inodes: HashMap::new(),
                next_inode: 0,
                dirs,
                generation: 0,
                rules: Vec::new(),
                counts: HashMap::new(),
                injected: 0,
                rng: seed,
            })),
        }
    }

    /// This file system as an [`FsRef`] (sharing its state).
    pub fn shared(&self) -> FsRef {
        Arc::new(self.clone())
    }

    /// Makes the `n`-th next operation of kind `op` (1 = the next one) fail with `fault`.
    pub fn fail_nth(&self, op: Op, n: u64, fault: Fault) {
        assert!(n >= 1, "n counts from 1");
        let mut state = self.state.lock();
        let at = state.counts.get(&op).copied().unwrap_or(0) + n;
        state.rules.push(Rule {
            op,
            trigger: Trigger::Nth(at),
            fault,
        });
    }

    /// Makes every later operation of kind `op` fail with `fault` with `probability`
    /// (1.0: always), until [`Self::clear_faults`].
    pub fn fail_randomly(&self, op: Op, probability: f64, fault: Fault) {
        self.state.lock().rules.push(Rule {
            op,
            trigger: Trigger::Random(probability),
            fault,
        });
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.state.lock().rules.clear();
    }

    /// How many faults were injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.state.lock().injected
    }

    /// A crash: everything not durable is lost (see the module docs).
    pub fn lose_power(&self) {
        let mut state = self.state.lock();
        for dir in state.dirs.values_mut() {
            dir.entries = dir.durable.clone();
        }
        let named: HashSet<u64> = state
            .dirs
            .values()
            .flat_map(|d| d.entries.values().copied())
            .collect();
        state.inodes.retain(|id, _| named.contains(id));
        for inode in state.inodes.values_mut() {
            inode.data = inode.durable.clone();
        }
        state.generation += 1;
    }
}

/// An open file of a [`FaultyFs`].
struct FaultyFile {
    state: Arc<Mutex<State>>,
    inode: u64,
    generation: u64,
}

impl fmt::Debug for FaultyFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FaultyFile")
            .field("inode", &self.inode)
            .field("generation", &self.generation)
            .finish()
    }
}

impl FaultyFile {
    /// [`Self::live`], then counts the operation (which may fail).
    fn begin(&self, op: Op) -> io::Result<MutexGuard<'_, State>> {
        let mut state = self.live()?;
        state.check(op)?;
        Ok(state)
    }

    /// Locks the state if the handle survived every power loss.
    fn live(&self) -> io::Result<MutexGuard<'_, State>> {
        let state = self.state.lock();
        if state.generation != self.generation {
            return Err(io::Error::other("file handle opened before a power loss"));
        }
        Ok(state)
    }
}

impl StorageFile for FaultyFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        let mut state = self.begin(Op::Read)?;
        let data = &state.inode(self.inode).data;
        let start = offset as usize;
        match data.get(start..start + buf.len()) {
            Some(bytes) => {
                buf.copy_from_slice(bytes);
                Ok(())
            }
            None => Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "read past the end of the file",
            )),
        }
    }

    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        let mut state = self.live()?;
        let (len, result) = match state.check(Op::Write) {
            Ok(()) => (buf.len(), Ok(())),
            Err(e) => ((state.next_u64() % (buf.len() as u64 + 1)) as usize, Err(e)),
        };
        if len > 0 {
            let inode = state.inode(self.inode);
            let start = offset as usize;
            if inode.data.len() < start + len {
                inode.data.resize(start + len, 0);
            }
            inode.data[start..start + len].copy_from_slice(&buf[..len]);
            inode.modified_ms = wall_clock_ms();
        }
        result
    }

    fn set_len(&self, len: u64) -> io::Result<()> {
        let mut state = self.begin(Op::SetLen)?;
        let inode = state.inode(self.inode);
        inode.data.resize(len as usize, 0);
        inode.modified_ms = wall_clock_ms();
        Ok(())
    }

    fn len(&self) -> io::Result<u64> {
        let mut state = self.live()?;
        Ok(state.inode(self.inode).data.len() as u64)
    }

    fn sync_data(&self) -> io::Result<()> {
        let mut state = self.live()?;
        let result = state.check(Op::Sync);
        let inode = state.inode(self.inode);
        match result {
            Ok(()) => inode.durable = inode.data.clone(),
            // The unsynced bytes are gone; what is durable is all there is.
            Err(_) => inode.data = inode.durable.clone(),
        }
        result
    }
}

impl Fs for FaultyFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef> {
        let mut state = self.state.lock();
        state.check(Op::Open)?;
        let (dir, name) = split(path)?;
        let existing = state.dir(dir)?.entries.get(name).copied();
        let inode = match (existing, mode) {
            (None, OpenMode::Existing) => return Err(not_found(path)),
            (Some(id), OpenMode::Existing | OpenMode::CreateOrKeep) => id,
            (Some(id), OpenMode::CreateTruncate) => {
                let inode = state.inode(id);
                inode.data.clear();
                inode.modified_ms = wall_clock_ms();
                id
            }
            (None, OpenMode::CreateOrKeep | OpenMode::CreateTruncate) => {
                let id = state.next_inode;
                state.next_inode += 1;
                state.inodes.insert(
                    id,
                    Inode {
                        modified_ms: wall_clock_ms(),
                        ..Inode::default()
                    },
                );
                state.dir_mut(dir)?.entries.insert(name.to_string(), id);
                id
            }
        };
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            inode,
            generation: state.generation,
        }))
    }

    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        let mut state = self.state.lock();
        state.check(Op::Read)?;
        let id = state.lookup(path)?;
        Ok(state.inode(id).data.clone())
    }

    fn exists(&self, path: &Path) -> bool {
        let state = self.state.lock();
        state.dirs.contains_key(path) || state.lookup(path).is_ok()
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check(Op::Remove)?;
        let (dir, name) = split(path)?;
        match state.dir_mut(dir)?.entries.remove(name) {
            Some(_) => Ok(()),
            None => Err(not_found(path)),
        }
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check(Op::Rename)?;
        if state.dirs.contains_key(from) {
            return state.rename_dir(from, to);
        }
        let id = state.lookup(from)?;
        let (to_dir, to_name) = split(to)?;
        state.dir(to_dir)?;
        let (from_dir, from_name) = split(from)?;
        state.dir_mut(from_dir)?.entries.remove(from_name);
        state
            .dir_mut(to_dir)?
            .entries
            .insert(to_name.to_string(), id);
        Ok(())
    }

    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check(Op::CreateDir)?;
        for dir in path.ancestors() {
            state.dirs.entry(dir.to_path_buf()).or_default();
        }
        Ok(())
    }

    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check(Op::Remove)?;
        state.dir(path)?;
        state.dirs.retain(|dir, _| !dir.starts_with(path));
        Ok(())
    }

    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let mut state = self.state.lock();
        state.check(Op::ListDir)?;
        let mut names: Vec<String> = state.dir(path)?.entries.keys().cloned().collect();
        names.extend(
            state
                .dirs
                .keys()
                .filter(|d| d.parent() == Some(path))
                .filter_map(|d| Some(d.file_name()?.to_str()?.to_string())),
        );
        Ok(names)
    }

    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        let mut state = self.state.lock();
        state.check(Op::SyncDir)?;
        let dir = state.dir_mut(path)?;
        dir.durable = dir.entries.clone();
        Ok(())
    }

    fn modified_ms(&self, path: &Path) -> Option<i64> {
        let mut state = self.state.lock();
        let id = state.lookup(path).ok()?;
        Some(state.inode(id).modified_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(fs: &FsRef, path: &str) -> io::Result<Vec<u8>> {
        fs.read(Path::new(path))
    }

    fn setup() -> (FaultyFs, FsRef) {
        let faulty = FaultyFs::new(7);
        let fs = faulty.shared();
        fs.create_dir_all(Path::new("/d")).unwrap();
        (faulty, fs)
    }

    #[test]
    fn power_loss_keeps_only_synced_bytes_of_durable_entries() {
        let (faulty, fs) = setup();
        let a = fs.open(Path::new("/d/a"), OpenMode::CreateOrKeep).unwrap();
        a.write_all_at(b"hello", 0).unwrap();
        a.sync_data().unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        a.write_all_at(b" world", 5).unwrap();
        let b = fs.open(Path::new("/d/b"), OpenMode::CreateOrKeep).unwrap();
        b.write_all_at(b"synced but never linked durably", 0)
            .unwrap();
        b.sync_data().unwrap();
        assert_eq!(read_all(&fs, "/d/a").unwrap(), b"hello world");

        faulty.lose_power();
        assert_eq!(read_all(&fs, "/d/a").unwrap(), b"hello");
        assert!(!fs.exists(Path::new("/d/b")));
        assert_eq!(fs.list_dir(Path::new("/d")).unwrap(), vec!["a".to_string()]);
        // The handles died with the process that held them.
        assert!(a.write_all_at(b"x", 0).is_err());
        assert!(a.sync_data().is_err());
    }

    #[test]
    fn renames_and_removals_are_durable_only_after_sync_dir() {
        let (faulty, fs) = setup();
        let d = Path::new("/d");
        fs.write_atomic(Path::new("/d/a"), b"one").unwrap();
        fs.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        faulty.lose_power();
        assert_eq!(fs.list_dir(d).unwrap(), vec!["a".to_string()]);

        fs.rename(Path::new("/d/a"), Path::new("/d/b")).unwrap();
        fs.sync_dir(d).unwrap();
        fs.remove_file(Path::new("/d/b")).unwrap();
        assert!(!fs.exists(Path::new("/d/b")));
        faulty.lose_power();
        assert_eq!(read_all(&fs, "/d/b").unwrap(), b"one");

        fs.remove_file(Path::new("/d/b")).unwrap();
        fs.sync_dir(d).unwrap();
        faulty.lose_power();
        assert!(fs.list_dir(d).unwrap().is_empty());
    }

    #[test]
    fn nth_operation_fails_with_the_given_error() {
        let (faulty, fs) = setup();
        let f = fs.open(Path::new("/d/f"), OpenMode::CreateOrKeep).unwrap();
        faulty.fail_nth(Op::Write, 2, Fault::ENOSPC);
        faulty.fail_nth(Op::Open, 1, Fault::EMFILE);
        faulty.fail_nth(Op::Read, 1, Fault::Kind(io::ErrorKind::Interrupted));
        f.write_all_at(b"abc", 0).unwrap();
        let err = f.write_all_at(b"defgh", 3).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(28));
        // A short write may have left a prefix of the failed bytes.
        let len = f.len().unwrap();
        assert!((3..=8).contains(&len));
        f.set_len(3).unwrap();
        f.write_all_at(b"d", 3).unwrap();
        let err = fs
            .open(Path::new("/d/g"), OpenMode::CreateOrKeep)
            .unwrap_err();
        assert_eq!(err.raw_os_error(), Some(24));
        assert!(!fs.exists(Path::new("/d/g")));
        let mut buf = [0u8; 4];
        let err = f.read_exact_at(&mut buf, 0).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::Interrupted);
        f.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"abcd");
        assert_eq!(faulty.faults_injected(), 3);
        assert_eq!(
            f.read_exact_at(&mut buf, 1).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
    }

    #[test]
    fn failed_sync_drops_unsynced_bytes_and_the_next_sync_succeeds() {
        let (faulty, fs) = setup();
        let f = fs.open(Path::new("/d/f"), OpenMode::CreateOrKeep).unwrap();
        fs.sync_dir(Path::new("/d")).unwrap();
        f.write_all_at(b"durable", 0).unwrap();
        f.sync_data().unwrap();
        f.write_all_at(b"+lost", 7).unwrap();
        faulty.fail_nth(Op::Sync, 1, Fault::EIO);
        assert_eq!(f.sync_data().unwrap_err().raw_os_error(), Some(5));
        assert_eq!(read_all(&fs, "/d/f").unwrap(), b"durable");
        f.sync_data().unwrap();
        f.write_all_at(b"+kept", 7).unwrap();
        f.sync_data().unwrap();
        faulty.lose_power();
        assert_eq!(read_all(&fs, "/d/f").unwrap(), b"durable+kept");
    }

    #[test]
    fn random_faults_replay_with_the_same_seed() {
        let run = |seed| {
            let faulty = FaultyFs::new(seed);
            let fs = faulty.shared();
            fs.create_dir_all(Path::new("/d")).unwrap();
            let f = fs.open(Path::new("/d/f"), OpenMode::CreateOrKeep).unwrap();
            faulty.fail_randomly(Op::Write, 0.3, Fault::EIO);
            let outcomes: Vec<bool> = (0..200)
                .map(|i| f.write_all_at(&[i as u8], i).is_ok())
                .collect();
            faulty.clear_faults();
            assert!(f.write_all_at(b"x", 0).is_ok());
            outcomes
        };
        let first = run(42);
        assert_eq!(first, run(42));
        assert_ne!(first, run(43));
        let failures = first.iter().filter(|ok| !**ok).count();
        assert!((30..90).contains(&failures), "{failures} failures");
    }

    #[test]
    fn write_atomic_leaves_old_or_new_content_whatever_fails() {
        for op in [Op::Open, Op::Write, Op::Sync, Op::Rename, Op::SyncDir] {
            let (faulty, fs) = setup();
            let path = Path::new("/d/checkpoint");
            fs.write_atomic(path, b"old").unwrap();
            faulty.fail_nth(op, 1, Fault::EIO);
            assert!(fs.write_atomic(path, b"new").is_err(), "{op:?}");
            faulty.lose_power();
            let content = fs.read(path).unwrap();
            assert!(
                content == b"old" || content == b"new",
                "{op:?}: {content:?}"
            );
            fs.write_atomic(path, b"newer").unwrap();
            faulty.lose_power();
            assert_eq!(fs.read(path).unwrap(), b"newer");
        }
    }

    #[test]
    fn directories_list_subdirectories_move_and_remove_recursively() {
        let (_faulty, fs) = setup();
        fs.create_dir_all(Path::new("/d/t-0")).unwrap();
        fs.open(Path::new("/d/t-0/x"), OpenMode::CreateOrKeep)
            .unwrap();
        fs.open(Path::new("/d/f"), OpenMode::CreateOrKeep).unwrap();
        let mut names = fs.list_dir(Path::new("/d")).unwrap();
        names.sort();
        assert_eq!(names, vec!["f".to_string(), "t-0".to_string()]);
        fs.rename(Path::new("/d/t-0"), Path::new("/d/t-0.deleted"))
            .unwrap();
        assert!(!fs.exists(Path::new("/d/t-0/x")));
        assert!(fs.exists(Path::new("/d/t-0.deleted/x")));
        assert!(fs
            .rename(Path::new("/d/t-0.deleted"), Path::new("/d/f"))
            .is_err());
        fs.remove_dir_all(Path::new("/d/t-0.deleted")).unwrap();
        assert!(!fs.exists(Path::new("/d/t-0.deleted/x")));
        assert!(fs
            .open(Path::new("/d/t-0/y"), OpenMode::CreateOrKeep)
            .is_err());
    }
}
