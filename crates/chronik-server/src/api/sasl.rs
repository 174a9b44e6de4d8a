//! SaslHandshake (v0–1) and SaslAuthenticate (v0–2) on a SASL listener: the Kafka framing of a
//! connection's authentication (`security::sasl` does the mechanisms), as Kafka's
//! `SaslServerAuthenticator`:
//!
//! - Until authenticated, only ApiVersions and these two APIs are accepted; anything else closes
//!   the connection.
//! - A v0 handshake means the tokens that follow are raw (size-prefixed, no request header).
//! - A failure is answered with SASL_AUTHENTICATION_FAILED and a message that does not say
//!   whether the user exists, and the connection is closed
//!   `connection_failed_authentication_delay_ms` later (as Kafka: the close is delayed).
//! - With `connections_max_reauth_ms`, SaslAuthenticate v1+ tells the session lifetime; a
//!   request after it ends closes the connection unless it re-authenticates (a new handshake
//!   and authentication on the same connection, as the same principal: KIP-368).
//!
//! On other listeners the connection never calls this: both APIs get ILLEGAL_SASL_STATE there.

use bytes::Bytes;
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseKind, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::Decodable;
use kafka_protocol::ResponseError;
use tokio::time::Instant;

use super::{respond, str_bytes, Outcome};
use crate::broker::Broker;
use crate::security::sasl::{failure_message, Authentication, SaslMechanism, Step};

/// The largest frame read before authentication (Kafka's sasl.server.max.receive.size).
pub const MAX_UNAUTHENTICATED_FRAME: usize = 512 * 1024;

/// What the connection does with a frame on a SASL listener.
pub enum Admit {
    /// A normal request, for the API layer.
    Dispatch,
    /// A SASL request or raw token: `ConnectionAuth::handle` answers it.
    Authenticate,
    /// Close the connection without an answer.
    Close(&'static str),
}

/// What an authentication step changed.
pub enum Event {
    Continue,
    /// Authenticated (or re-authenticated) as this principal.
    Authenticated(String),
    /// Failed: answer, then close after the failure delay.
    Failed,
}

/// One SASL connection's authentication state.
#[derive(Default)]
pub struct ConnectionAuth {
    /// The principal once authenticated.
    principal: Option<String>,
    /// When the session ends (KIP-368), if it does.
    expires: Option<Instant>,
    /// Between a handshake and the end of its authentication.
    pending: Option<Authentication>,
    /// The handshake was v0: the next tokens come raw.
    raw: bool,
}

impl ConnectionAuth {
    /// Who answers a frame with this API key now.
    pub fn admit(&self, api_key: i16) -> Admit {
        if self.raw && self.pending.is_some() {
            return Admit::Authenticate;
        }
        if api_key == ApiKey::SaslHandshake as i16 || api_key == ApiKey::SaslAuthenticate as i16 {
            return Admit::Authenticate;
        }
        if self.principal.is_none() {
            return match api_key == ApiKey::ApiVersions as i16 {
                true => Admit::Dispatch,
                false => Admit::Close("request before authentication"),
            };
        }
        match self.expires {
            Some(at) if Instant::now() >= at => {
                Admit::Close("session expired without re-authentication")
            }
            _ => Admit::Dispatch,
        }
    }

    /// Answers one SASL frame (or raw token).
    pub async fn handle(&mut self, broker: &Broker, frame: Bytes) -> (Outcome, Event) {
        if self.raw && self.pending.is_some() {
            return self.raw_token(broker, frame).await;
        }
        let Some((header, version, api_key, mut body)) = decode_header(frame) else {
            return (Outcome::Close("malformed SASL request"), Event::Failed);
        };
        let correlation_id = header.correlation_id;
        match api_key {
            ApiKey::SaslHandshake => {
                let Ok(request) = SaslHandshakeRequest::decode(&mut body, version) else {
                    return (Outcome::Close("malformed SaslHandshake"), Event::Failed);
                };
                let settings = &broker.sasl;
                let mechanism = SaslMechanism::from_name(&request.mechanism)
                    .filter(|m| settings.mechanisms.contains(m));
                let response = SaslHandshakeResponse::default().with_mechanisms(
                    settings
                        .mechanisms
                        .iter()
                        .map(|m| str_bytes(m.name()))
                        .collect(),
                );
                let Some(mechanism) = mechanism else {
                    let response =
                        response.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
                    let outcome = respond(
                        correlation_id,
                        api_key,
                        version,
                        ResponseKind::SaslHandshake(response),
                    );
                    return (outcome, Event::Failed);
                };
                self.pending = Some(Authentication::new(mechanism));
                self.raw = version == 0;
                let outcome = respond(
                    correlation_id,
                    api_key,
                    version,
                    ResponseKind::SaslHandshake(response),
                );
                (outcome, Event::Continue)
            }
            ApiKey::SaslAuthenticate => {
                let Ok(request) = SaslAuthenticateRequest::decode(&mut body, version) else {
                    return (Outcome::Close("malformed SaslAuthenticate"), Event::Failed);
                };
                let Some(pending) = self.pending.as_mut() else {
                    let response = SaslAuthenticateResponse::default()
                        .with_error_code(ResponseError::IllegalSaslState.code())
                        .with_error_message(Some(str_bytes(
                            "SaslAuthenticate without SaslHandshake",
                        )));
                    let outcome = respond(
                        correlation_id,
                        api_key,
                        version,
                        ResponseKind::SaslAuthenticate(response),
                    );
                    return (outcome, Event::Failed);
                };
                let mechanism = pending.mechanism;
                let step = pending
                    .token(&broker.sasl, &broker.metadata.image(), &request.auth_bytes)
                    .await;
                let (response, event) = match self.conclude(broker, step) {
                    Ok((token, event)) => {
                        let lifetime = match (&event, broker.sasl.reauth) {
                            (Event::Authenticated(_), Some(reauth)) if version >= 1 => {
                                reauth.as_millis() as i64
                            }
                            _ => 0,
                        };
                        let response = SaslAuthenticateResponse::default()
                            .with_auth_bytes(Bytes::from(token))
                            .with_session_lifetime_ms(lifetime);
                        (response, event)
                    }
                    Err(()) => {
                        let response = SaslAuthenticateResponse::default()
                            .with_error_code(ResponseError::SaslAuthenticationFailed.code())
                            .with_error_message(Some(str_bytes(&failure_message(mechanism))));
                        (response, Event::Failed)
                    }
                };
                let outcome = respond(
                    correlation_id,
                    api_key,
                    version,
                    ResponseKind::SaslAuthenticate(response),
                );
                (outcome, event)
            }
            _ => (Outcome::Close("not a SASL request"), Event::Failed),
        }
    }

    /// A token after a v0 handshake: answered raw (size prefix and token); a failure closes
    /// the connection without an answer, as Kafka does.
    async fn raw_token(&mut self, broker: &Broker, token: Bytes) -> (Outcome, Event) {
        let Some(pending) = self.pending.as_mut() else {
            return (
                Outcome::Close("no authentication in progress"),
                Event::Failed,
            );
        };
        let step = pending
            .token(&broker.sasl, &broker.metadata.image(), &token)
            .await;
        match self.conclude(broker, step) {
            Ok((token, event)) => {
                let mut frame = Vec::with_capacity(4 + token.len());
                frame.extend_from_slice(&(token.len() as u32).to_be_bytes());
                frame.extend_from_slice(&token);
                (Outcome::Respond(Bytes::from(frame)), event)
            }
            Err(()) => (Outcome::Close("authentication failed"), Event::Failed),
        }
    }

    /// Applies a step: the token to send back and what changed, or Err on failure.
    fn conclude(&mut self, broker: &Broker, step: Step) -> Result<(Vec<u8>, Event), ()> {
        match step {
            Step::Challenge(token) => Ok((token, Event::Continue)),
            Step::Failed => {
                self.pending = None;
                Err(())
            }
            Step::Done { user, token } => {
                self.pending = None;
                self.raw = false;
                let principal = format!("User:{user}");
                // A re-authentication must keep the principal (KIP-368).
                if self.principal.as_ref().is_some_and(|p| *p != principal) {
                    return Err(());
                }
                self.expires = broker.sasl.reauth.map(|d| Instant::now() + d);
                self.principal = Some(principal.clone());
                Ok((token, Event::Authenticated(principal)))
            }
        }
    }
}

/// The request header of a SASL request, with its version checked.
fn decode_header(frame: Bytes) -> Option<(RequestHeader, i16, ApiKey, Bytes)> {
    if frame.len() < 4 {
        return None;
    }
    let api_key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).ok()?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let (min, max) = super::supported_versions(api_key)?;
    if version < min || version > max {
        return None;
    }
    let mut body = frame;
    let header = RequestHeader::decode(&mut body, api_key.request_header_version(version)).ok()?;
    Some((header, version, api_key, body))
}

/// The answer to SaslHandshake or SaslAuthenticate on a listener without SASL.
pub fn illegal_state(api_key: ApiKey) -> Option<ResponseKind> {
    let code = ResponseError::IllegalSaslState.code();
    match api_key {
        ApiKey::SaslHandshake => Some(ResponseKind::SaslHandshake(
            SaslHandshakeResponse::default().with_error_code(code),
        )),
        ApiKey::SaslAuthenticate => Some(ResponseKind::SaslAuthenticate(
            SaslAuthenticateResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes("this listener does not use SASL"))),
        )),
        _ => None,
    }
}
