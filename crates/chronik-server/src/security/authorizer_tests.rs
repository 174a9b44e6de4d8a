use std::sync::Arc;

use super::*;
use crate::security::acl::{AclBinding, PatternType};

fn session(principal: &str, host: &str) -> Session {
    Session {
        principal: principal.into(),
        host: host.into(),
        listener: Arc::from("PLAINTEXT"),
    }
}

fn acl(
    rt: ResourceType,
    name: &str,
    pattern: PatternType,
    principal: &str,
    host: &str,
    op: AclOperation,
    perm: PermissionType,
) -> AclBinding {
    AclBinding {
        resource_type: rt,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: host.into(),
        operation: op,
        permission: perm,
    }
}

fn authorizer(bindings: &[AclBinding], allow_if_none: bool) -> (tempfile::TempDir, Authorizer) {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(AclStore::new());
    store.replace(bindings.iter().cloned().collect());
    (dir, Authorizer::new(store, allow_if_none))
}

use AclOperation::*;
use PermissionType::*;
use ResourceType::*;

#[test]
fn no_acls_follows_allow_everyone_setting() {
    let anon = session("User:ANONYMOUS", "127.0.0.1");
    let (_d, open) = authorizer(&[], true);
    assert!(open.topic(&anon, Write, "t"));
    let (_d, closed) = authorizer(&[], false);
    assert!(!closed.topic(&anon, Write, "t"));
    // ACLs on another resource do not make this one restricted.
    let other = acl(Topic, "x", PatternType::Literal, "User:a", "*", Read, Allow);
    let (_d, open) = authorizer(std::slice::from_ref(&other), true);
    assert!(open.topic(&anon, Write, "t"));
    assert!(!open.topic(&anon, Write, "x"));
    let (_d, closed) = authorizer(&[other], false);
    assert!(!closed.topic(&anon, Write, "t"));
}

#[test]
fn deny_wins_over_allow() {
    let alice = session("User:alice", "10.0.0.1");
    let (_d, a) = authorizer(
        &[
            acl(
                Topic,
                "t",
                PatternType::Literal,
                "User:alice",
                "*",
                All,
                Allow,
            ),
            acl(
                Topic,
                "t",
                PatternType::Prefixed,
                "User:*",
                "10.0.0.1",
                Write,
                Deny,
            ),
        ],
        true,
    );
    assert!(a.topic(&alice, Read, "t"));
    assert!(!a.topic(&alice, Write, "t"));
    // From another host the DENY does not apply.
    assert!(a.topic(&session("User:alice", "10.0.0.2"), Write, "t"));
    // Another principal has no ALLOW on a resource that has ACLs.
    assert!(!a.topic(&session("User:bob", "10.0.0.2"), Read, "t"));
}

#[test]
fn deny_all_denies_every_operation() {
    let bob = session("User:bob", "h");
    let (_d, a) = authorizer(
        &[
            acl(
                Group,
                "g",
                PatternType::Literal,
                "User:bob",
                "*",
                Read,
                Allow,
            ),
            acl(Group, "*", PatternType::Literal, "User:bob", "h", All, Deny),
        ],
        true,
    );
    assert!(!a.group(&bob, Read, "g"));
    assert!(!a.group(&bob, Describe, "other"));
}

#[test]
fn implied_operations() {
    let u = session("User:u", "h");
    let (_d, a) = authorizer(
        &[
            acl(Topic, "r", PatternType::Literal, "User:u", "*", Read, Allow),
            acl(
                Topic,
                "c",
                PatternType::Literal,
                "User:u",
                "*",
                AlterConfigs,
                Allow,
            ),
            acl(
                Cluster,
                "kafka-cluster",
                PatternType::Literal,
                "User:*",
                "*",
                Create,
                Allow,
            ),
        ],
        true,
    );
    assert!(a.topic(&u, Describe, "r"));
    assert!(!a.topic(&u, Write, "r"));
    assert!(a.topic(&u, DescribeConfigs, "c"));
    assert!(!a.topic(&u, Describe, "c"));
    assert!(a.cluster(&u, Create));
    assert!(!a.cluster(&u, Alter));
    // A DENY of READ does not deny DESCRIBE.
    let (_d, a) = authorizer(
        &[acl(
            Topic,
            "r",
            PatternType::Literal,
            "User:u",
            "*",
            Read,
            Deny,
        )],
        true,
    );
    assert!(!a.topic(&u, Read, "r"));
    assert!(!a.topic(&u, Describe, "r")); // ACLs exist, no ALLOW
}

#[test]
fn prefixed_and_wildcard_resources_apply() {
    let u = session("User:u", "h");
    let (_d, a) = authorizer(
        &[
            acl(
                Topic,
                "orders-",
                PatternType::Prefixed,
                "User:u",
                "*",
                Write,
                Allow,
            ),
            acl(Topic, "*", PatternType::Literal, "User:u", "*", Read, Allow),
        ],
        false,
    );
    assert!(a.topic(&u, Write, "orders-eu"));
    assert!(!a.topic(&u, Write, "payments"));
    assert!(a.topic(&u, Read, "payments"));
    assert!(a.topic(&u, Read, "orders-eu"));
}

#[test]
fn authorized_operations_is_the_bitfield_of_allowed_supported_operations() {
    let anon = session("User:ANONYMOUS", "127.0.0.1");
    let bits = |ops: &[AclOperation]| ops.iter().fold(0i32, |b, op| b | 1 << op.code());
    let (_d, open) = authorizer(&[], true);
    // Kafka's supported operations per type; ALL and the other types' operations never appear.
    assert_eq!(
        open.authorized_operations(&anon, Group, "g"),
        bits(&[Read, Describe, Delete])
    );
    assert_eq!(
        open.authorized_operations(&anon, Topic, "t"),
        0b1101_1111_1000
    );
    let (_d, closed) = authorizer(&[], false);
    assert_eq!(closed.authorized_operations(&anon, Topic, "t"), 0);
    // One ALLOW READ: READ plus the DESCRIBE it implies, nothing else.
    let (_d, a) = authorizer(
        &[acl(
            Topic,
            "t",
            PatternType::Literal,
            "User:ANONYMOUS",
            "*",
            Read,
            Allow,
        )],
        true,
    );
    assert_eq!(
        a.authorized_operations(&anon, Topic, "t"),
        bits(&[Read, Describe])
    );
}

#[test]
fn by_resource_type_follows_kafkas_rule() {
    use PatternType::{Literal, Prefixed};
    let anon = session("User:ANONYMOUS", "127.0.0.1");
    let by_type = |bindings: &[AclBinding], allow_if_none: bool| {
        let (_d, a) = authorizer(bindings, allow_if_none);
        a.authorize_by_resource_type(&anon, Write, Topic)
    };
    let allow = |name: &str, p| acl(Topic, name, p, "User:*", "*", Write, Allow);
    let deny = |name: &str, p| acl(Topic, name, p, "User:ANONYMOUS", "*", Write, Deny);
    // Nothing at all, or an unrelated ACL: the allow-everyone setting decides.
    assert!(by_type(&[], true));
    assert!(!by_type(&[], false));
    let read = acl(Topic, "t", Literal, "User:*", "*", Read, Allow);
    assert!(by_type(std::slice::from_ref(&read), true));
    assert!(!by_type(&[read], false));
    // A literal `*` DENY refuses even with allow-everyone.
    assert!(!by_type(&[deny("*", Literal)], true));
    // Some ALLOW that no DENY dominates.
    assert!(by_type(&[allow("t", Literal)], false));
    assert!(by_type(&[allow("*", Literal), deny("x", Prefixed)], false));
    assert!(!by_type(&[allow("t", Literal), deny("t", Literal)], false));
    assert!(!by_type(
        &[allow("tx", Literal), deny("t", Prefixed)],
        false
    ));
    assert!(!by_type(
        &[allow("tx", Prefixed), deny("t", Prefixed)],
        false
    ));
    assert!(by_type(
        &[allow("tx", Prefixed), deny("tx", Literal)],
        false
    ));
    assert!(by_type(
        &[allow("a", Literal), allow("b", Literal), deny("a", Literal)],
        false
    ));
    // Another principal's ALLOW does not count.
    let other = acl(Topic, "t", Literal, "User:bob", "*", Write, Allow);
    assert!(!by_type(&[other], false));
}

#[test]
fn super_users_bypass_acls() {
    let (_dir, authorizer) = authorizer(&[], false);
    let authorizer = authorizer.with_super_users("User:admin; User:ops;");
    for (principal, allowed) in [
        ("User:admin", true),
        ("User:ops", true),
        ("User:bob", false),
    ] {
        let s = session(principal, "10.0.0.1");
        assert_eq!(authorizer.topic(&s, AclOperation::Write, "t"), allowed);
        assert_eq!(
            authorizer.authorize_by_resource_type(&s, AclOperation::Write, ResourceType::Topic),
            allowed
        );
    }
}
