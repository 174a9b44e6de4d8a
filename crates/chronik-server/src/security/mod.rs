//! Security: who is asking (`Session`), the ACL bindings (`acl`), the decision whether a
//! request may act on a resource (`authorizer`), users' SCRAM credentials (`scram`), and
//! authentication: SASL mechanisms (`sasl`, with the SCRAM server exchange in `scram_server`)
//! and TLS with client certificates (`tls`).
//!
//! A session's principal is `User:<name>` once a SASL listener's connection authenticated, the
//! mapped subject of a verified client certificate on an SSL listener, else `User:ANONYMOUS`;
//! its host is the peer's IP address, as in Kafka.

pub mod acl;
pub mod authorizer;
pub mod sasl;
pub mod scram;
pub mod scram_client;
pub mod scram_server;
pub mod tls;

pub use acl::{
    AclBinding, AclBindingFilter, AclOperation, AclStore, PatternType, PermissionType, ResourceType,
};
pub use authorizer::Authorizer;

use std::sync::Arc;

/// The principal of unauthenticated (PLAINTEXT) connections.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Who sent a request: the connection's principal and the host it connects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    pub host: String,
    /// The listener the connection came in on: Metadata answers with its endpoints.
    pub listener: Arc<str>,
}

impl Session {
    /// An unauthenticated connection from `peer` on the PLAINTEXT listener (unknown peers
    /// get host "").
    pub fn anonymous(peer: Option<std::net::SocketAddr>) -> Session {
        Session::on_listener(Arc::from("PLAINTEXT"), peer)
    }

    /// An unauthenticated connection from `peer` on `listener`.
    pub fn on_listener(listener: Arc<str>, peer: Option<std::net::SocketAddr>) -> Session {
        let host = peer
            .map(|p| p.ip().to_canonical().to_string())
            .unwrap_or_default();
        Session {
            principal: ANONYMOUS.to_string(),
            host,
            listener,
        }
    }

    /// The same connection, authenticated as `principal`.
    pub fn with_principal(&self, principal: String) -> Session {
        Session {
            principal,
            ..self.clone()
        }
    }
}
