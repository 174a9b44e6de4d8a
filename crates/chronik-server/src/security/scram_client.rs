//! The client side of a SCRAM exchange (RFC 5802), for this broker's own connections to other
//! brokers' SASL listeners (replica fetchers). The counterpart of `scram_server`, written by
//! hand for the same reason.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::scram::ScramMechanism;

/// The exchange after the client-first message.
pub struct ScramClient {
    mechanism: ScramMechanism,
    password: String,
    nonce: String,
    first_bare: String,
    /// Expected `v=` of the server-final message.
    server_signature: Option<Vec<u8>>,
}

impl ScramClient {
    /// Starts the exchange; returns it and the client-first message.
    pub fn start(mechanism: ScramMechanism, user: &str, password: &str) -> (ScramClient, String) {
        let nonce = BASE64.encode(rand::random::<[u8; 24]>());
        let name = user.replace('=', "=3D").replace(',', "=2C");
        let first_bare = format!("n={name},r={nonce}");
        let client = ScramClient {
            mechanism,
            password: password.to_string(),
            nonce,
            first_bare: first_bare.clone(),
            server_signature: None,
        };
        (client, format!("n,,{first_bare}"))
    }

    /// Takes server-first and returns client-final.
    pub fn respond(&mut self, server_first: &str) -> Result<String, &'static str> {
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for field in server_first.split(',') {
            match field.split_at_checked(2) {
                Some(("r=", v)) => nonce = Some(v),
                Some(("s=", v)) => salt = BASE64.decode(v).ok(),
                Some(("i=", v)) => iterations = v.parse::<u32>().ok(),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err("malformed server-first message");
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("server nonce does not extend ours");
        }
        if !(4096..=16384).contains(&iterations) {
            return Err("iteration count out of bounds");
        }
        let m = self.mechanism;
        let salted = m.salted_password(self.password.as_bytes(), &salt, iterations);
        let client_key = m.hmac(&salted, b"Client Key");
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{},{server_first},{without_proof}", self.first_bare);
        let signature = m.hmac(&m.hash(&client_key), auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = m.hmac(&salted, b"Server Key");
        self.server_signature = Some(m.hmac(&server_key, auth_message.as_bytes()));
        Ok(format!("{without_proof},p={}", BASE64.encode(proof)))
    }

    /// Checks server-final: the server knew the credential.
    pub fn finish(&self, server_final: &str) -> Result<(), &'static str> {
        let expected = self.server_signature.as_ref().ok_or("no exchange")?;
        let signature = server_final
            .strip_prefix("v=")
            .and_then(|v| BASE64.decode(v).ok())
            .ok_or("malformed server-final message")?;
        match bool::from(signature.ct_eq(expected)) {
            true => Ok(()),
            false => Err("the server's signature does not verify"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security::scram::ScramCredential;
    use crate::security::scram_server::{parse_client_first, ScramExchange};

    #[test]
    fn client_and_server_agree() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::from_password(m, "secret", 4096);
            let (mut client, first) = ScramClient::start(m, "bro,ker", "secret");
            let parsed = parse_client_first(&first).unwrap();
            assert_eq!(parsed.user, "bro,ker");
            let (server, server_first) = ScramExchange::start(m, &parsed, credential.clone());
            let last = client.respond(&server_first).unwrap();
            let server_final = server.finish(&last).unwrap();
            client.finish(&server_final).unwrap();

            // A signature other than the credential's is refused, and so is a nonce the
            // server did not extend.
            assert!(client.finish("v=AAAA").is_err());
            let (mut client, _) = ScramClient::start(m, "broker", "secret");
            assert!(client.respond("r=someone-else,s=AAAA,i=4096").is_err());
        }
    }
}
