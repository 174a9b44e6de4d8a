//! The high-watermark checkpoint of a data directory (Kafka's `replication-offset-checkpoint`):
//! every hosted partition's high watermark, written atomically every few seconds and at a clean
//! shutdown, read once at start.
//!
//! Why: the high watermark is not in the log. A replica that restarted with its high watermark
//! at its log end would count a tail the ISR never held as committed, and carry that into a
//! later leadership (consumers could read records a failover then replaces). Starting from the
//! checkpoint (never above the log end) is at most a few seconds behind; a leader's watermark
//! then moves up as its followers fetch, a follower's as its leader tells it.
//!
//! Format, as Kafka's: a version line `0`, a count line, then `<topic> <partition> <offset>`
//! per line (topic names cannot hold spaces).

use std::collections::HashMap;
use std::io;
use std::path::Path;

use chronik_storage::fs::Fs;

pub const FILE_NAME: &str = "replication-offset-checkpoint";

/// High watermarks by (topic, partition).
pub type Checkpoint = HashMap<(String, i32), i64>;

/// The checkpoint in `dir`: `Ok(None)` when there is none (a data directory from before
/// checkpoints, or a fresh one).
pub fn read(fs: &dyn Fs, dir: &Path) -> io::Result<Option<Checkpoint>> {
    let path = dir.join(FILE_NAME);
    if !fs.exists(&path) {
        return Ok(None);
    }
    let text = String::from_utf8(fs.read(&path)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8"))?;
    parse(&text)
        .map(Some)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "malformed checkpoint"))
}

fn parse(text: &str) -> Option<Checkpoint> {
    let mut lines = text.lines();
    if lines.next()?.trim() != "0" {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Checkpoint = lines
        .map(|line| {
            let mut words = line.split_whitespace();
            let topic = words.next()?.to_string();
            let partition = words.next()?.parse().ok()?;
            let offset = words.next()?.parse().ok()?;
            words
                .next()
                .is_none()
                .then_some(((topic, partition), offset))
        })
        .collect::<Option<_>>()?;
    (entries.len() == count).then_some(entries)
}

/// Replaces the checkpoint in `dir` with `entries` (a crash leaves the old or the new one).
pub fn write(fs: &dyn Fs, dir: &Path, entries: &[(String, i32, i64)]) -> io::Result<()> {
    let mut text = format!("0\n{}\n", entries.len());
    for (topic, partition, offset) in entries {
        text.push_str(&format!("{topic} {partition} {offset}\n"));
    }
    fs.write_atomic(&dir.join(FILE_NAME), text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chronik_storage::fs::RealFs;

    #[test]
    fn round_trip_absent_and_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let fs = RealFs::shared();
        assert_eq!(read(&*fs, dir.path()).unwrap(), None);
        let entries = vec![
            ("t".to_string(), 0, 42),
            ("__consumer_offsets".into(), 7, 0),
        ];
        write(&*fs, dir.path(), &entries).unwrap();
        let read_back = read(&*fs, dir.path()).unwrap().unwrap();
        assert_eq!(read_back.len(), 2);
        assert_eq!(read_back[&("t".to_string(), 0)], 42);
        for bad in [
            "1\n0\n",
            "0\n2\nt 0 1\n",
            "0\n1\nt x 1\n",
            "0\n1\nt 0 1 9\n",
            "",
        ] {
            std::fs::write(dir.path().join(FILE_NAME), bad).unwrap();
            assert!(read(&*fs, dir.path()).is_err(), "{bad:?}");
        }
    }
}
