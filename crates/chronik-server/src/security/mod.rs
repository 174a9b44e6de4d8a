//! Security: who is asking (`Session`), the ACL bindings (`acl`), the decision whether a
//! request may act on a resource (`authorizer`), and users' SCRAM credentials (`scram`).
//!
//! Connections are PLAINTEXT without SASL, so every session's principal is `User:ANONYMOUS`
//! and its host is the peer's IP address, as in Kafka.

pub mod acl;
pub mod authorizer;
pub mod scram;

pub use acl::{
    AclBinding, AclBindingFilter, AclOperation, AclStore, PatternType, PermissionType, ResourceType,
};
pub use authorizer::Authorizer;

/// The principal of unauthenticated (PLAINTEXT) connections.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

/// Who sent a request: the connection's principal and the host it connects from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub principal: String,
    pub host: String,
}

impl Session {
    /// An unauthenticated connection from `peer` (`*`-less host string; unknown peers get "").
    pub fn anonymous(peer: Option<std::net::SocketAddr>) -> Session {
        let host = peer
            .map(|p| p.ip().to_canonical().to_string())
            .unwrap_or_default();
        Session {
            principal: ANONYMOUS.to_string(),
            host,
        }
    }
}
