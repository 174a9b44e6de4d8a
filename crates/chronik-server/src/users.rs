//! `chronik-server users add`: a user's SCRAM credential created before the broker starts
//! (Kafka's `kafka-storage format --add-scram`), so a cluster can require authentication from
//! its first start. The credential (salted forms only) waits in `meta/pending-users.json`;
//! the broker commits the pending ones to the metadata log once it has registered, then
//! removes the file. A running cluster takes AlterUserScramCredentials from any client.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use crate::security::scram::{check_iterations, ScramCredential, ScramMechanism};

const PENDING_FILE: &str = "pending-users.json";

fn pending_path(meta_dir: &Path) -> PathBuf {
    meta_dir.join(PENDING_FILE)
}

/// Adds (or replaces) `user`'s credential for `mechanism` among the pending ones of the data
/// directory whose metadata directory is `meta_dir`. The password is read from
/// `password_file` (one trailing newline is not part of it).
pub fn add(
    meta_dir: &Path,
    user: &str,
    mechanism: &str,
    password_file: &Path,
    iterations: i32,
) -> anyhow::Result<()> {
    if user.is_empty() {
        bail!("the user name must not be empty");
    }
    let Some(mechanism) = ScramMechanism::from_name(mechanism) else {
        bail!("unknown mechanism {mechanism:?}: SCRAM-SHA-256 or SCRAM-SHA-512");
    };
    check_iterations(iterations).map_err(anyhow::Error::msg)?;
    let password = std::fs::read_to_string(password_file)
        .with_context(|| format!("reading {}", password_file.display()))?;
    let password = password
        .strip_suffix('\n')
        .map(|p| p.strip_suffix('\r').unwrap_or(p))
        .unwrap_or(&password);
    if password.is_empty() {
        bail!("{} holds an empty password", password_file.display());
    }
    let credential = ScramCredential::from_password(mechanism, password, iterations);
    let mut pending = read_pending(meta_dir)?.unwrap_or_default();
    pending.retain(|(u, c)| !(u == user && c.mechanism == mechanism));
    pending.push((user.to_string(), credential));
    std::fs::create_dir_all(meta_dir)
        .with_context(|| format!("creating {}", meta_dir.display()))?;
    crate::quorum::log_store::write_atomically(
        &pending_path(meta_dir),
        &serde_json::to_vec(&pending)?,
        true,
    )
    .with_context(|| format!("writing {}", pending_path(meta_dir).display()))
}

/// The credentials `add` left for the broker to commit, if any.
pub fn read_pending(meta_dir: &Path) -> anyhow::Result<Option<Vec<(String, ScramCredential)>>> {
    let path = pending_path(meta_dir);
    match std::fs::read(&path) {
        Ok(bytes) => Ok(Some(
            serde_json::from_slice(&bytes)
                .with_context(|| format!("reading {}", path.display()))?,
        )),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The pending credentials are in the metadata log: the file goes.
pub fn committed(meta_dir: &Path) -> std::io::Result<()> {
    std::fs::remove_file(pending_path(meta_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pending_users_are_added_replaced_and_refused_when_malformed() {
        let dir = tempfile::tempdir().unwrap();
        let pw = dir.path().join("pw.txt");
        std::fs::write(&pw, "secret\n").unwrap();
        let meta = dir.path().join("meta");
        assert!(read_pending(&meta).unwrap().is_none());
        add(&meta, "admin", "SCRAM-SHA-512", &pw, 4096).unwrap();
        add(&meta, "admin", "scram-sha-512", &pw, 8192).unwrap();
        add(&meta, "admin", "SCRAM-SHA-256", &pw, 4096).unwrap();
        let pending = read_pending(&meta).unwrap().unwrap();
        let listed: Vec<_> = pending
            .iter()
            .map(|(u, c)| (u.as_str(), c.mechanism, c.iterations))
            .collect();
        assert_eq!(
            listed,
            vec![
                ("admin", ScramMechanism::Sha512, 8192),
                ("admin", ScramMechanism::Sha256, 4096)
            ]
        );
        // The password is "secret", without the newline.
        let c = &pending[1].1;
        let salted = ScramMechanism::Sha256.salted_password(b"secret", &c.salt, 4096);
        let expected = ScramCredential::from_salted_password(
            ScramMechanism::Sha256,
            c.salt.clone(),
            &salted,
            4096,
        );
        assert_eq!(c, &expected);
        assert!(add(&meta, "", "SCRAM-SHA-256", &pw, 4096).is_err());
        assert!(add(&meta, "a", "PLAIN", &pw, 4096).is_err());
        assert!(add(&meta, "a", "SCRAM-SHA-256", &pw, 1000).is_err());
        std::fs::write(&pw, "\n").unwrap();
        assert!(add(&meta, "a", "SCRAM-SHA-256", &pw, 4096).is_err());
        committed(&meta).unwrap();
        assert!(read_pending(&meta).unwrap().is_none());
    }
}
