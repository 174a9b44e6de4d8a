//! The file-system seam of the log layer: every file the log layer reads, writes, syncs,
//! renames or removes goes through [`Fs`] and [`StorageFile`], so tests can swap the real
//! file system ([`RealFs`]) for one that fails any operation or loses every byte that was
//! not fsynced (`crate::faulty_fs`, in tests and with the `fault-injection` feature).
//!
//! Durability model (what callers may rely on, and what the faulty file system enforces):
//! - bytes written to a file survive a crash only after [`StorageFile::sync_data`] of that file
//!   returned `Ok`;
//! - a created, renamed or removed directory entry survives a crash only after
//!   [`Fs::sync_dir`] of its parent returned `Ok`;
//! - after a failed `sync_data`, nothing may be assumed about the unsynced bytes, even if a
//!   later `sync_data` succeeds (Linux drops the dirty pages and reports the error once).

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;
use std::time::UNIX_EPOCH;

/// One open file, shared (`Arc`) so it can be fsynced outside the log's lock.
// Its length is an I/O call that can fail: callers compare `len()?` themselves.
#[allow(clippy::len_without_is_empty)]
pub trait StorageFile: Send + Sync + fmt::Debug {
    /// Reads exactly `buf.len()` bytes at `offset` (UnexpectedEof if the file is shorter).
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()>;
    /// Writes all of `buf` at `offset`, extending the file if needed.
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()>;
    fn set_len(&self, len: u64) -> io::Result<()>;
    fn len(&self) -> io::Result<u64>;
    /// Makes the file's written bytes (and its length) durable.
    fn sync_data(&self) -> io::Result<()>;
    /// Starts writing the file's dirty pages out without waiting for them: a hint that
    /// spreads a later `sync_data`'s work over time (it promises nothing by itself).
    fn start_writeback(&self) -> io::Result<()> {
        Ok(())
    }
}

/// A shared open file.
pub type FileRef = Arc<dyn StorageFile>;

/// How to open a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// The file must exist.
    Existing,
    /// Create it if missing, keep its content otherwise.
    CreateOrKeep,
    /// Create it if missing, empty it otherwise.
    CreateTruncate,
}

/// The file-system operations of the log layer.
pub trait Fs: Send + Sync + fmt::Debug {
    /// Opens a file for reading and writing.
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef>;
    /// Reads a whole (small) file.
    fn read(&self, path: &Path) -> io::Result<Vec<u8>>;
    fn exists(&self, path: &Path) -> bool;
    fn remove_file(&self, path: &Path) -> io::Result<()>;
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;
    fn create_dir_all(&self, path: &Path) -> io::Result<()>;
    fn remove_dir_all(&self, path: &Path) -> io::Result<()>;
    /// Names of the entries of a directory.
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    /// Makes the directory's entries (creations, renames, removals) durable.
    fn sync_dir(&self, path: &Path) -> io::Result<()>;
    /// Last modification time in ms since the Unix epoch, if known.
    fn modified_ms(&self, path: &Path) -> Option<i64>;

    /// Replaces `path` with `data` so that a crash leaves the old or the new content: a
    /// temporary file (`<path>.tmp`), fsync, rename, fsync of the directory.
    fn write_atomic(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = Path::new(&tmp);
        let written = self.open(tmp, OpenMode::CreateTruncate).and_then(|file| {
            file.write_all_at(data, 0)?;
            file.sync_data()
        });
        if let Err(e) = written.and_then(|()| self.rename(tmp, path)) {
            // Best effort: a stale temporary file is replaced next time anyway.
            let _ = self.remove_file(tmp);
            return Err(e);
        }
        match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => self.sync_dir(dir),
            _ => Ok(()),
        }
    }

    /// Removes a file, treating a missing file as removed.
    fn remove_file_if_exists(&self, path: &Path) -> io::Result<()> {
        match self.remove_file(path) {
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            other => other,
        }
    }
}

/// Shared handle to a file system.
pub type FsRef = Arc<dyn Fs>;

/// The operating system's file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct RealFs;

impl RealFs {
    /// The real file system as a shareable [`FsRef`].
    pub fn shared() -> FsRef {
        Arc::new(RealFs)
    }
}

#[derive(Debug)]
struct RealFile(File);

impl StorageFile for RealFile {
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> io::Result<()> {
        self.0.read_exact_at(buf, offset)
    }
    fn write_all_at(&self, buf: &[u8], offset: u64) -> io::Result<()> {
        self.0.write_all_at(buf, offset)
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
    fn len(&self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn sync_data(&self) -> io::Result<()> {
        self.0.sync_data()
    }
    #[cfg(target_os = "linux")]
    fn start_writeback(&self) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for as long as `self`; no memory is passed.
        let rc =
            unsafe { libc::sync_file_range(self.0.as_raw_fd(), 0, 0, libc::SYNC_FILE_RANGE_WRITE) };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}

impl Fs for RealFs {
    fn open(&self, path: &Path, mode: OpenMode) -> io::Result<FileRef> {
        let mut options = OpenOptions::new();
        options.read(true).write(true);
        match mode {
            OpenMode::Existing => {}
            OpenMode::CreateOrKeep => {
                options.create(true);
            }
            OpenMode::CreateTruncate => {
                options.create(true).truncate(true);
            }
        }
        Ok(Arc::new(RealFile(options.open(path)?)))
    }
    fn read(&self, path: &Path) -> io::Result<Vec<u8>> {
        fs::read(path)
    }
    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        fs::remove_file(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        fs::rename(from, to)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::create_dir_all(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        fs::remove_dir_all(path)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        fs::read_dir(path)?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect()
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        File::open(path)?.sync_all()
    }
    fn modified_ms(&self, path: &Path) -> Option<i64> {
        let modified = fs::metadata(path).ok()?.modified().ok()?;
        Some(modified.duration_since(UNIX_EPOCH).ok()?.as_millis() as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn real_fs_round_trip_and_atomic_replace() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        let path = dir.path().join("a");
        let file = fs.open(&path, OpenMode::CreateOrKeep).unwrap();
        file.write_all_at(b"hello", 0).unwrap();
        file.sync_data().unwrap();
        let mut buf = [0u8; 5];
        file.read_exact_at(&mut buf, 0).unwrap();
        assert_eq!(&buf, b"hello");
        assert_eq!(file.len().unwrap(), 5);
        fs.write_atomic(&path, b"new").unwrap();
        assert_eq!(fs.read(&path).unwrap(), b"new");
        assert!(!fs.exists(&dir.path().join("a.tmp")));
        assert_eq!(fs.list_dir(dir.path()).unwrap(), vec!["a".to_string()]);
        fs.remove_file_if_exists(&path).unwrap();
        fs.remove_file_if_exists(&path).unwrap();
        assert!(fs.open(&path, OpenMode::Existing).is_err());
    }

    #[test]
    fn a_failed_atomic_replace_keeps_the_target_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // Renaming a file over a directory fails even for root.
        std::fs::create_dir(&path).unwrap();
        assert!(RealFs.write_atomic(&path, b"new").is_err());
        assert!(path.is_dir());
        assert!(!dir.path().join("state.tmp").exists());
    }
}
