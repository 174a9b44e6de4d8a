//! Crash-safe replacement of the broker's small state files (`meta/topics.json`,
//! `meta/acls.json`, `meta/producer-id-block`, each partition's `partition.metadata`).
//!
//! The new content goes to `<name>.tmp`, is fsynced, renamed over the target, and the directory
//! is fsynced: a crash leaves the old or the new content, never a torn file, and once
//! `replace_file` returns the new content survives a power loss. Callers persist first and only
//! then publish the new state in memory, so a failed write leaves memory as it was.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Atomically replaces `path` with `contents` and makes the change durable.
pub fn replace_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let tmp = tmp_path(path);
    let result = write_synced(&tmp, contents)
        .and_then(|()| fs::rename(&tmp, path))
        .and_then(|()| sync_parent(path));
    if result.is_err() {
        // Best effort: a stale temp file is overwritten next time anyway.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Fsyncs a directory, making the creations, renames and removals of its entries durable.
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Fsyncs the directory holding `path`.
pub fn sync_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => sync_dir(dir),
        _ => sync_dir(Path::new(".")),
    }
}

fn write_synced(path: &Path, contents: &[u8]) -> io::Result<()> {
    let mut file = File::create(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_content_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        replace_file(&path, b"one").unwrap();
        replace_file(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert!(!dir.path().join("state.tmp").exists());
    }

    #[test]
    fn a_failed_replace_keeps_the_target_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        // Renaming a file over a directory fails even for root.
        fs::create_dir(&path).unwrap();
        assert!(replace_file(&path, b"new").is_err());
        assert!(path.is_dir());
        assert!(!dir.path().join("state.tmp").exists());
    }
}
