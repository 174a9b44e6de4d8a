//! The server side of a SCRAM exchange (RFC 5802, RFC 7677), checked against the stored
//! StoredKey/ServerKey only. Written by hand: no maintained crate offers a server-side SCRAM
//! that works from Kafka's stored credential forms and fits the broker's async framing.
//!
//! Two client messages: client-first (`n,,n=user,r=nonce`) is answered with the server-first
//! message (the nonce extended with ours, the salt and the iteration count); client-final
//! (`c=biws,r=nonce,p=proof`) is checked (channel binding as announced, our nonce, the proof)
//! and answered with the server signature. No channel binding is offered, so the GS2 header is
//! `n,,` or `y,,`; `p=` is refused.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine;
use subtle::ConstantTimeEq;

use super::scram::{ScramCredential, ScramMechanism};

/// Why an exchange failed. Said to the client only as a generic failure, never whether the
/// user exists.
#[derive(Debug, PartialEq, Eq)]
pub enum ScramError {
    Malformed(&'static str),
    BadProof,
}

/// The exchange after the client-first message: what the final message is checked against.
pub struct ScramExchange {
    mechanism: ScramMechanism,
    user: String,
    credential: ScramCredential,
    /// Base64 of the GS2 header the client sent, which `c=` must repeat.
    channel_binding: String,
    nonce: String,
    /// client-first-bare + "," + server-first: the start of the AuthMessage.
    auth_message_start: String,
}

/// A parsed client-first message.
pub struct ClientFirst<'a> {
    pub user: String,
    gs2_header: &'a str,
    bare: &'a str,
    client_nonce: &'a str,
}

/// Parses client-first: `gs2-header client-first-bare`, header `n,,` / `y,,` / `n,a=authzid,`
/// (an authzid must name the user, as in Kafka).
pub fn parse_client_first(message: &str) -> Result<ClientFirst<'_>, ScramError> {
    let (cbind, rest) = message
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    if cbind != "n" && cbind != "y" {
        return Err(ScramError::Malformed("channel binding is not supported"));
    }
    let (authzid, bare) = rest
        .split_once(',')
        .ok_or(ScramError::Malformed("no GS2 header"))?;
    let gs2_header = &message[..message.len() - bare.len()];
    let mut fields = bare.split(',');
    let user = match fields.next().and_then(|f| f.strip_prefix("n=")) {
        Some(name) => decode_saslname(name)?,
        None => return Err(ScramError::Malformed("no user name")),
    };
    let client_nonce = fields
        .next()
        .and_then(|f| f.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or(ScramError::Malformed("no client nonce"))?;
    if let Some(authzid) = authzid.strip_prefix("a=") {
        if decode_saslname(authzid)? != user {
            return Err(ScramError::Malformed("authorization id differs from user"));
        }
    } else if !authzid.is_empty() {
        return Err(ScramError::Malformed("bad GS2 header"));
    }
    Ok(ClientFirst {
        user,
        gs2_header,
        bare,
        client_nonce,
    })
}

/// `=2C` and `=3D` stand for `,` and `=` in a SCRAM user name; any other `=` is malformed.
fn decode_saslname(name: &str) -> Result<String, ScramError> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(at) = rest.find('=') {
        out.push_str(&rest[..at]);
        match rest.get(at..at + 3) {
            Some("=2C") => out.push(','),
            Some("=3D") => out.push('='),
            _ => return Err(ScramError::Malformed("bad escape in user name")),
        }
        rest = &rest[at + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

impl ScramExchange {
    /// Starts the exchange for `first` with the user's credential (or a stand-in for an
    /// unknown user, so that both go the same way) and returns the server-first message.
    pub fn start(
        mechanism: ScramMechanism,
        first: &ClientFirst<'_>,
        credential: ScramCredential,
    ) -> (ScramExchange, String) {
        let server_nonce: [u8; 24] = rand::random();
        let nonce = format!("{}{}", first.client_nonce, BASE64.encode(server_nonce));
        let server_first = format!(
            "r={nonce},s={},i={}",
            BASE64.encode(&credential.salt),
            credential.iterations
        );
        let exchange = ScramExchange {
            mechanism,
            user: first.user.clone(),
            credential,
            channel_binding: BASE64.encode(first.gs2_header),
            nonce,
            auth_message_start: format!("{},{server_first}", first.bare),
        };
        (exchange, server_first)
    }

    pub fn user(&self) -> &str {
        &self.user
    }

    /// Checks client-final and returns server-final (`v=signature`).
    pub fn finish(self, message: &str) -> Result<String, ScramError> {
        let (without_proof, proof) = message
            .rsplit_once(",p=")
            .ok_or(ScramError::Malformed("no proof"))?;
        let mut fields = without_proof.split(',');
        if fields.next().and_then(|f| f.strip_prefix("c=")) != Some(&self.channel_binding) {
            return Err(ScramError::Malformed("channel binding differs"));
        }
        // Kafka checks only that the nonce ends with ours (fresh, so no replay; the proof covers
        // the message as sent): librdkafka up to 2.0 (Debian's kcat) repeats its own nonce
        // in front of it.
        let echoed = fields.next().and_then(|f| f.strip_prefix("r="));
        if !echoed.is_some_and(|r| r.ends_with(&self.nonce)) {
            return Err(ScramError::Malformed("nonce differs"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| ScramError::Malformed("proof is not base64"))?;
        let auth_message = format!("{},{without_proof}", self.auth_message_start);
        let m = self.mechanism;
        let client_signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(ScramError::BadProof);
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(a, b)| a ^ b)
            .collect();
        if !bool::from(m.hash(&client_key).ct_eq(&self.credential.stored_key)) {
            return Err(ScramError::BadProof);
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client side, enough to drive the exchange (RFC 5802 section 3).
    fn client_final(
        mechanism: ScramMechanism,
        password: &str,
        client_first_bare: &str,
        server_first: &str,
    ) -> (String, String) {
        let fields: Vec<&str> = server_first.split(',').collect();
        let nonce = fields[0].strip_prefix("r=").unwrap();
        let salt = BASE64
            .decode(fields[1].strip_prefix("s=").unwrap())
            .unwrap();
        let iterations: u32 = fields[2].strip_prefix("i=").unwrap().parse().unwrap();
        let salted = mechanism.salted_password(password.as_bytes(), &salt, iterations);
        let client_key = mechanism.hmac(&salted, b"Client Key");
        let stored_key = mechanism.hash(&client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let signature = mechanism.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = mechanism.hmac(&salted, b"Server Key");
        let expected = format!(
            "v={}",
            BASE64.encode(mechanism.hmac(&server_key, auth_message.as_bytes()))
        );
        (
            format!("{without_proof},p={}", BASE64.encode(proof)),
            expected,
        )
    }

    #[test]
    fn a_full_exchange_verifies_the_password_and_signs() {
        for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
            let credential = ScramCredential::from_password(m, "pencil", 4096);
            let message = "n,,n=us=3Der,r=fyko+d2lbbFgONRv9qkxdawL";
            let first = parse_client_first(message).unwrap();
            assert_eq!(first.user, "us=er");
            let (exchange, server_first) = ScramExchange::start(m, &first, credential.clone());
            assert!(server_first.starts_with("r=fyko+d2lbbFgONRv9qkxdawL"));
            let bare = "n=us=3Der,r=fyko+d2lbbFgONRv9qkxdawL";
            let (last, expected) = client_final(m, "pencil", bare, &server_first);
            assert_eq!(exchange.finish(&last).unwrap(), expected);

            let (exchange, server_first) = ScramExchange::start(m, &first, credential);
            let (last, _) = client_final(m, "wrong", bare, &server_first);
            assert_eq!(exchange.finish(&last), Err(ScramError::BadProof));
        }
    }

    #[test]
    fn malformed_messages_are_refused() {
        for message in [
            "",
            "p=tls-unique,,n=u,r=x",
            "n,,r=x",
            "n,,n=u",
            "n,,n=u,r=",
            "n,,n=u=,r=x",
            "n,a=other,n=u,r=x",
            "n,x,n=u,r=x",
        ] {
            assert!(parse_client_first(message).is_err(), "{message:?}");
        }
        assert_eq!(parse_client_first("n,a=u,n=u,r=x").unwrap().user, "u");
        let first = parse_client_first("n,,n=u,r=abc").unwrap();
        let credential = ScramCredential::from_password(ScramMechanism::Sha256, "p", 4096);
        let (exchange, server_first) =
            ScramExchange::start(ScramMechanism::Sha256, &first, credential);
        let nonce = server_first.split(',').next().unwrap();
        for last in [
            "c=biws".to_string(),
            format!("c=eSws,{nonce},p=AAAA"),
            "c=biws,r=abc,p=AAAA".to_string(),
            format!("c=biws,{nonce},p=***"),
        ] {
            let (again, _) = ScramExchange::start(
                ScramMechanism::Sha256,
                &first,
                ScramCredential::from_password(ScramMechanism::Sha256, "p", 4096),
            );
            assert!(again.finish(&last).is_err(), "{last}");
        }
        assert!(exchange.finish(&format!("c=biws,{nonce},p=AAAA")).is_err());
    }
}
