//! `Authorizer`: may this session perform this operation on this resource? Kafka's rules
//! (`AclAuthorizer` / `StandardAuthorizer`):
//!
//! 1. Collect the bindings whose pattern applies to the resource (literal name, literal `*`,
//!    prefixes of the name). None at all: allow iff `allow_everyone_if_no_acl_found`.
//! 2. A DENY entry matching the principal (or `User:*`), host (or `*`) and operation (or ALL)
//!    refuses, whatever ALLOWs exist.
//! 3. Otherwise an ALLOW entry matching principal, host and operation is needed. ALL covers
//!    every operation; DESCRIBE is implied by READ, WRITE, DELETE and ALTER; DESCRIBE_CONFIGS by
//!    ALTER_CONFIGS.
//!
//! Cost on the hot path: with no bindings at all, one atomic load; otherwise an `Arc` clone of
//! the current snapshot and a few hash lookups.

use std::sync::Arc;

use super::acl::{
    AclEntry, AclOperation, AclStore, PatternType, PermissionType, ResourceType, WILDCARD,
};
use super::acl::{CLUSTER_NAME, WILDCARD_PRINCIPAL};
use super::Session;

pub struct Authorizer {
    acls: Arc<AclStore>,
    allow_everyone_if_no_acl_found: bool,
    /// Principals allowed everything (Kafka's super.users); a handful at most.
    super_users: Vec<String>,
}

impl Authorizer {
    pub fn new(acls: Arc<AclStore>, allow_everyone_if_no_acl_found: bool) -> Authorizer {
        Authorizer {
            acls,
            allow_everyone_if_no_acl_found,
            super_users: Vec::new(),
        }
    }

    /// With `super_users` as Kafka's `super.users` spells them: `User:admin;User:ops`.
    pub fn with_super_users(mut self, super_users: &str) -> Authorizer {
        self.super_users = super_users
            .split(';')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_string)
            .collect();
        self
    }

    fn is_super_user(&self, session: &Session) -> bool {
        self.super_users.contains(&session.principal)
    }

    pub fn acls(&self) -> &AclStore {
        &self.acls
    }

    /// Kafka's decision for one (session, operation, resource).
    pub fn authorize(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.is_super_user(session) {
            return true;
        }
        if self.acls.is_empty() {
            return self.allow_everyone_if_no_acl_found;
        }
        let index = self.acls.snapshot();
        let mut any = false;
        let mut allowed = false;
        for entry in index.entries_for(resource_type, name) {
            any = true;
            if !applies_to(entry, session) {
                continue;
            }
            match entry.permission {
                PermissionType::Deny => {
                    if entry.operation == operation || entry.operation == AclOperation::All {
                        return false;
                    }
                }
                PermissionType::Allow => allowed |= allow_covers(entry.operation, operation),
            }
        }
        if !any {
            return self.allow_everyone_if_no_acl_found;
        }
        allowed
    }

    pub fn topic(&self, session: &Session, operation: AclOperation, topic: &str) -> bool {
        self.authorize(session, operation, ResourceType::Topic, topic)
    }

    pub fn group(&self, session: &Session, operation: AclOperation, group: &str) -> bool {
        self.authorize(session, operation, ResourceType::Group, group)
    }

    pub fn cluster(&self, session: &Session, operation: AclOperation) -> bool {
        self.authorize(session, operation, ResourceType::Cluster, CLUSTER_NAME)
    }

    /// May this session perform `operation` on *some* resource of this type? Kafka's
    /// `authorizeByResourceType` (InitProducerId without a transactional id: WRITE on any
    /// topic): a literal `*` DENY refuses; `allow_everyone_if_no_acl_found` allows; otherwise
    /// an ALLOW (operation or ALL) is needed on `*`, or on a literal name / prefix that no DENY
    /// of the same name or a prefix of it covers.
    pub fn authorize_by_resource_type(
        &self,
        session: &Session,
        operation: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if self.is_super_user(session) {
            return true;
        }
        if self.acls.is_empty() {
            return self.allow_everyone_if_no_acl_found;
        }
        let index = self.acls.snapshot();
        let relevant = index.bindings().iter().filter(|b| {
            b.resource_type == resource_type
                && (b.principal == session.principal || b.principal == WILDCARD_PRINCIPAL)
                && (b.host == session.host || b.host == WILDCARD)
                && (b.operation == operation || b.operation == AclOperation::All)
        });
        let (mut deny_literal, mut deny_prefix) = (Vec::new(), Vec::new());
        let mut allows = Vec::new();
        for b in relevant {
            match (b.permission, b.pattern_type) {
                (PermissionType::Deny, PatternType::Literal) if b.resource_name == WILDCARD => {
                    return false;
                }
                (PermissionType::Deny, PatternType::Literal) => deny_literal.push(b),
                (PermissionType::Deny, PatternType::Prefixed) => deny_prefix.push(b),
                (PermissionType::Allow, _) => allows.push(b),
            }
        }
        if self.allow_everyone_if_no_acl_found {
            return true;
        }
        allows.iter().any(|a| {
            if a.pattern_type == PatternType::Literal && a.resource_name == WILDCARD {
                return true;
            }
            let literal_denied = a.pattern_type == PatternType::Literal
                && deny_literal
                    .iter()
                    .any(|d| d.resource_name == a.resource_name);
            let prefix_denied = deny_prefix
                .iter()
                .any(|d| a.resource_name.starts_with(d.resource_name.as_str()));
            !literal_denied && !prefix_denied
        })
    }

    /// The "authorized operations" bitfield of Metadata, DescribeCluster and DescribeGroups
    /// (KIP-430): bit `1 << code` for every operation of the resource type this session may
    /// perform on the resource, as Kafka's `AuthHelper.authorizedOperations`.
    pub fn authorized_operations(
        &self,
        session: &Session,
        resource_type: ResourceType,
        name: &str,
    ) -> i32 {
        supported_operations(resource_type)
            .iter()
            .filter(|op| self.authorize(session, **op, resource_type, name))
            .fold(0, |bits, op| bits | 1 << op.code())
    }

    /// The cluster's bitfield as Metadata and DescribeCluster report it: Kafka reveals it only
    /// to a session that may DESCRIBE the cluster, and answers 0 to any other.
    pub fn cluster_authorized_operations(&self, session: &Session) -> i32 {
        if !self.cluster(session, AclOperation::Describe) {
            return 0;
        }
        self.authorized_operations(session, ResourceType::Cluster, CLUSTER_NAME)
    }
}

/// The operations an ACL on a resource of this type can grant (Kafka's
/// `AclEntry.supportedOperations`).
pub fn supported_operations(resource_type: ResourceType) -> &'static [AclOperation] {
    use AclOperation::*;
    match resource_type {
        ResourceType::Topic => &[
            Read,
            Write,
            Create,
            Describe,
            Delete,
            Alter,
            DescribeConfigs,
            AlterConfigs,
        ],
        ResourceType::Group => &[Read, Describe, Delete],
        ResourceType::Cluster => &[
            Create,
            ClusterAction,
            DescribeConfigs,
            AlterConfigs,
            IdempotentWrite,
            Alter,
            Describe,
        ],
        ResourceType::TransactionalId => &[Describe, Write],
        ResourceType::DelegationToken => &[Describe],
        ResourceType::User => &[CreateTokens, DescribeTokens],
    }
}

fn applies_to(entry: &AclEntry, session: &Session) -> bool {
    (entry.principal == session.principal || entry.principal == WILDCARD_PRINCIPAL)
        && (entry.host == session.host || entry.host == WILDCARD)
}

/// Whether an ALLOW of `granted` permits `wanted`.
fn allow_covers(granted: AclOperation, wanted: AclOperation) -> bool {
    use AclOperation::*;
    granted == wanted
        || granted == All
        || match wanted {
            Describe => matches!(granted, Read | Write | Delete | Alter),
            DescribeConfigs => granted == AlterConfigs,
            _ => false,
        }
}

#[cfg(test)]
#[path = "authorizer_tests.rs"]
mod tests;
