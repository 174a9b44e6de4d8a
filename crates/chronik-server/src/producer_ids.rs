//! Allocation of idempotent-producer ids, unique across restarts.
//!
//! File format: `data/meta/producer-id-block`, the decimal id just past the last block handed
//! out, replaced crash-safely (`durable::replace_file`). Ids are reserved in blocks of `BLOCK`
//! so an InitProducerId costs an fsync only once per block; a crash skips the rest of the block,
//! which is harmless. A block is handed out only after its end is on disk, so a failed write
//! leaves the allocator as it was, and an unreadable file stops the broker rather than reuse ids.

use std::path::{Path, PathBuf};

use parking_lot::Mutex;

const BLOCK: i64 = 1000;

pub struct ProducerIdManager {
    path: PathBuf,
    /// (next id to hand out, end of the reserved block)
    state: Mutex<(i64, i64)>,
}

impl ProducerIdManager {
    pub fn open(meta_dir: &Path) -> std::io::Result<ProducerIdManager> {
        let path = meta_dir.join("producer-id-block");
        let start = match std::fs::read_to_string(&path) {
            Ok(text) => text.trim().parse::<i64>().map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{}: not an id: {text:?}", path.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        Ok(ProducerIdManager {
            path,
            state: Mutex::new((start, start)),
        })
    }

    pub fn next_id(&self) -> std::io::Result<i64> {
        let mut state = self.state.lock();
        if state.0 == state.1 {
            let end = state.1 + BLOCK;
            crate::durable::replace_file(&self.path, end.to_string().as_bytes())?;
            state.1 = end;
        }
        let id = state.0;
        state.0 += 1;
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| ids.next_id().unwrap()).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(ids);
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        assert!(ids.next_id().unwrap() >= BLOCK);
    }

    #[test]
    fn a_failed_block_write_hands_out_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        // A directory in place of the file makes the rename fail, even for root.
        std::fs::create_dir(dir.path().join("producer-id-block")).unwrap();
        assert!(ids.next_id().is_err());
        assert!(ids.next_id().is_err());
        std::fs::remove_dir(dir.path().join("producer-id-block")).unwrap();
        assert_eq!(ids.next_id().unwrap(), 0);
        drop(ids);
        let ids = ProducerIdManager::open(dir.path()).unwrap();
        assert_eq!(ids.next_id().unwrap(), BLOCK);
    }

    #[test]
    fn an_unreadable_block_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("producer-id-block"), "garbage").unwrap();
        assert!(ProducerIdManager::open(dir.path()).is_err());
    }
}
