//! SASL authentication of one connection, token by token, independent of how the tokens are
//! framed (`api::sasl` carries them in SaslHandshake/SaslAuthenticate or raw after a v0
//! handshake). Mechanisms: PLAIN and SCRAM-SHA-256/512, both checked against the SCRAM
//! credentials in the metadata image (PLAIN derives the SaltedPassword with the stored salt and
//! iteration count).
//!
//! An unknown user goes the same way as a known one with a wrong password: a stand-in
//! credential derived from the user name and a per-process secret (the same salt each time for
//! the same name), the same work, the same answer. Nothing here logs a token or credential.

use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;
use tracing::debug;

use super::scram::{ScramCredential, ScramMechanism, MIN_ITERATIONS};
use super::scram_server::{parse_client_first, ScramExchange};
use crate::config::BrokerConfig;
use crate::metadata::MetadataImage;

/// What any failed authentication is told, whatever went wrong (Kafka words it so too).
pub fn failure_message(mechanism: SaslMechanism) -> String {
    format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    )
}

/// A SASL mechanism this broker can offer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    Scram(ScramMechanism),
}

impl SaslMechanism {
    pub fn from_name(name: &str) -> Option<SaslMechanism> {
        if name.eq_ignore_ascii_case("PLAIN") {
            return Some(SaslMechanism::Plain);
        }
        ScramMechanism::from_name(name).map(SaslMechanism::Scram)
    }

    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::Scram(m) => m.name(),
        }
    }
}

/// The broker-wide SASL settings.
pub struct SaslSettings {
    pub mechanisms: Vec<SaslMechanism>,
    /// How long a failed authentication waits before it is answered and closed.
    pub failure_delay: Duration,
    /// Session lifetime (KIP-368); None: sessions do not expire.
    pub reauth: Option<Duration>,
    /// Keys the stand-in credentials of unknown users.
    secret: [u8; 32],
}

impl SaslSettings {
    pub fn from_config(config: &BrokerConfig) -> anyhow::Result<SaslSettings> {
        Ok(SaslSettings {
            mechanisms: config.sasl_mechanisms()?,
            failure_delay: Duration::from_millis(config.connection_failed_authentication_delay_ms),
            reauth: (config.connections_max_reauth_ms > 0)
                .then(|| Duration::from_millis(config.connections_max_reauth_ms)),
            secret: rand::random(),
        })
    }

    fn keyed(&self, purpose: &[u8], user: &str) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes any key");
        mac.update(purpose);
        mac.update(user.as_bytes());
        mac.finalize().into_bytes().to_vec()
    }

    /// What an unknown user is checked against: it never verifies, and looks like a real one.
    fn stand_in(&self, mechanism: ScramMechanism, user: &str) -> ScramCredential {
        let len = mechanism.hash(b"").len();
        let mut stored_key = self.keyed(b"stored", user);
        stored_key.resize(len, 0);
        let mut server_key = self.keyed(b"server", user);
        server_key.resize(len, 0);
        ScramCredential {
            mechanism,
            salt: self.keyed(b"salt", user),
            stored_key,
            server_key,
            iterations: MIN_ITERATIONS,
        }
    }

    /// The user's credential for `mechanism`, or the stand-in.
    fn credential(
        &self,
        image: &MetadataImage,
        mechanism: ScramMechanism,
        user: &str,
    ) -> ScramCredential {
        image
            .scram_credentials
            .get(user)
            .and_then(|c| c.get(&mechanism))
            .cloned()
            .unwrap_or_else(|| self.stand_in(mechanism, user))
    }
}

/// The result of one client token.
pub enum Step {
    /// Send this token and expect another.
    Challenge(Vec<u8>),
    /// Authenticated as `user`; send `token` (possibly empty) as the last answer.
    Done { user: String, token: Vec<u8> },
    /// Authentication failed.
    Failed,
}

/// One authentication in progress: the mechanism chosen by the handshake and, for SCRAM, the
/// exchange after its first message.
pub struct Authentication {
    pub mechanism: SaslMechanism,
    scram: Option<ScramExchange>,
}

impl Authentication {
    pub fn new(mechanism: SaslMechanism) -> Authentication {
        Authentication {
            mechanism,
            scram: None,
        }
    }

    /// Takes the client's next token.
    pub async fn token(
        &mut self,
        settings: &SaslSettings,
        image: &MetadataImage,
        token: &[u8],
    ) -> Step {
        let Ok(text) = std::str::from_utf8(token) else {
            return Step::Failed;
        };
        match (self.mechanism, self.scram.take()) {
            (SaslMechanism::Plain, _) => plain(settings, image, text).await,
            (SaslMechanism::Scram(m), None) => {
                let first = match parse_client_first(text) {
                    Ok(first) => first,
                    Err(e) => {
                        debug!(?e, "SCRAM client-first refused");
                        return Step::Failed;
                    }
                };
                let credential = settings.credential(image, m, &first.user);
                let (exchange, server_first) = ScramExchange::start(m, &first, credential);
                self.scram = Some(exchange);
                Step::Challenge(server_first.into_bytes())
            }
            (SaslMechanism::Scram(_), Some(exchange)) => {
                let user = exchange.user().to_string();
                match exchange.finish(text) {
                    Ok(server_final) => Step::Done {
                        user,
                        token: server_final.into_bytes(),
                    },
                    // The kind of failure only: never a token or key.
                    Err(e) => {
                        debug!(?e, "SCRAM client-final refused");
                        Step::Failed
                    }
                }
            }
        }
    }
}

/// PLAIN (RFC 4616): `authzid NUL authcid NUL password`; an authzid must name the user. The
/// password is salted with each stored credential's parameters off the async workers.
async fn plain(settings: &SaslSettings, image: &MetadataImage, message: &str) -> Step {
    let mut parts = message.split('\0');
    let (Some(authzid), Some(user), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Step::Failed;
    };
    if user.is_empty() || (!authzid.is_empty() && authzid != user) {
        return Step::Failed;
    }
    let credential = image
        .scram_credentials
        .get(user)
        .and_then(|c| c.values().next())
        .cloned()
        .unwrap_or_else(|| settings.stand_in(ScramMechanism::Sha256, user));
    let password = password.as_bytes().to_vec();
    let verified = tokio::task::spawn_blocking(move || {
        let c = credential;
        let salted = c
            .mechanism
            .salted_password(&password, &c.salt, c.iterations.max(1) as u32);
        let derived = ScramCredential::from_salted_password(
            c.mechanism,
            c.salt.clone(),
            &salted,
            c.iterations,
        );
        bool::from(derived.stored_key.ct_eq(&c.stored_key))
    })
    .await
    .unwrap_or(false);
    match verified {
        true => Step::Done {
            user: user.to_string(),
            token: Vec::new(),
        },
        false => Step::Failed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> SaslSettings {
        SaslSettings::from_config(&BrokerConfig::default()).unwrap()
    }

    fn image_with(user: &str, password: &str, m: ScramMechanism) -> MetadataImage {
        let mut image = MetadataImage::default();
        image
            .scram_credentials
            .entry(user.into())
            .or_default()
            .insert(m, ScramCredential::from_password(m, password, 4096));
        image
    }

    #[tokio::test]
    async fn plain_checks_the_password_against_the_scram_credential() {
        let s = settings();
        let image = image_with("alice", "secret", ScramMechanism::Sha512);
        let mut auth = Authentication::new(SaslMechanism::Plain);
        for (token, ok) in [
            (&b"\0alice\0secret"[..], true),
            (b"alice\0alice\0secret", true),
            (b"bob\0alice\0secret", false),
            (b"\0alice\0wrong", false),
            (b"\0nobody\0secret", false),
            (b"\0alice\0secret\0", false),
            (b"\xff\0alice", false),
        ] {
            let step = auth.token(&s, &image, token).await;
            assert_eq!(matches!(step, Step::Done { .. }), ok, "{token:?}");
        }
    }

    #[test]
    fn unknown_users_get_a_stable_stand_in_that_looks_real() {
        let s = settings();
        let a = s.stand_in(ScramMechanism::Sha512, "nobody");
        assert_eq!(a, s.stand_in(ScramMechanism::Sha512, "nobody"));
        assert_ne!(a.salt, s.stand_in(ScramMechanism::Sha512, "other").salt);
        assert_eq!((a.stored_key.len(), a.iterations), (64, 4096));
        assert_eq!(
            SaslMechanism::from_name("scram-sha-256"),
            Some(SaslMechanism::Scram(ScramMechanism::Sha256))
        );
        assert_eq!(SaslMechanism::from_name("GSSAPI"), None);
    }
}
