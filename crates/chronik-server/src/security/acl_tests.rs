use super::*;

fn binding(name: &str, pattern: PatternType, principal: &str, op: AclOperation) -> AclBinding {
    AclBinding {
        resource_type: ResourceType::Topic,
        resource_name: name.into(),
        pattern_type: pattern,
        principal: principal.into(),
        host: "*".into(),
        operation: op,
        permission: PermissionType::Allow,
    }
}

fn filter(name: Option<&str>, pattern: i8) -> AclBindingFilter {
    AclBindingFilter::from_wire(2, name, pattern, None, None, ANY, ANY).unwrap()
}

#[test]
fn creation_is_validated_like_kafka() {
    let ok = |rt, name, pt, principal, host, op, perm| {
        AclBinding::from_wire(rt, name, pt, principal, host, op, perm)
    };
    assert!(ok(2, "t", 3, "User:a", "*", 3, 3).is_ok());
    assert!(ok(2, "t", 4, "User:a", "10.0.0.1", 2, 2).is_ok());
    // ANY / MATCH / UNKNOWN are filter values, not binding values.
    assert!(ok(1, "t", 3, "User:a", "*", 3, 3).is_err());
    assert!(ok(0, "t", 3, "User:a", "*", 3, 3).is_err());
    assert!(ok(2, "t", 2, "User:a", "*", 3, 3).is_err());
    assert!(ok(2, "t", 1, "User:a", "*", 3, 3).is_err());
    assert!(ok(2, "t", 3, "User:a", "*", 1, 3).is_err());
    assert!(ok(2, "t", 3, "User:a", "*", 3, 1).is_err());
    assert!(ok(2, "t", 3, "User:a", "*", 3, 9).is_err());
    assert!(ok(99, "t", 3, "User:a", "*", 3, 3).is_err());
    // Names and principals.
    assert!(ok(2, "", 3, "User:a", "*", 3, 3).is_err());
    assert!(ok(2, "t", 3, "", "*", 3, 3).is_err());
    assert!(ok(2, "t", 3, "alice", "*", 3, 3).is_err());
    assert!(ok(2, "t", 3, ":alice", "*", 3, 3).is_err());
    assert!(ok(4, "other", 3, "User:a", "*", 7, 3).is_err());
    assert!(ok(4, "kafka-cluster", 3, "User:a", "*", 7, 3).is_ok());
}

#[test]
fn filters_refuse_unknown_values() {
    assert!(AclBindingFilter::from_wire(0, None, 1, None, None, 1, 1).is_err());
    assert!(AclBindingFilter::from_wire(1, None, 0, None, None, 1, 1).is_err());
    assert!(AclBindingFilter::from_wire(1, None, 1, None, None, 0, 1).is_err());
    assert!(AclBindingFilter::from_wire(1, None, 1, None, None, 1, 0).is_err());
    assert_eq!(
        AclBindingFilter::from_wire(1, None, 1, None, None, 1, 1).unwrap(),
        AclBindingFilter::any()
    );
}

#[test]
fn pattern_filters_match_like_kafka() {
    let literal = binding("orders", PatternType::Literal, "User:a", AclOperation::Read);
    let wildcard = binding("*", PatternType::Literal, "User:a", AclOperation::Read);
    let prefixed = binding("ord", PatternType::Prefixed, "User:a", AclOperation::Read);
    let other = binding(
        "payments",
        PatternType::Literal,
        "User:a",
        AclOperation::Read,
    );

    let m = filter(Some("orders"), MATCH);
    assert!(m.matches(&literal) && m.matches(&wildcard) && m.matches(&prefixed));
    assert!(!m.matches(&other));

    // ANY pattern type: exact name only.
    let any = filter(Some("orders"), ANY);
    assert!(any.matches(&literal) && !any.matches(&wildcard) && !any.matches(&prefixed));

    // A specific pattern type: that type and the exact name.
    let lit = filter(Some("ord"), 3);
    assert!(!lit.matches(&prefixed) && !lit.matches(&literal));
    let pre = filter(Some("ord"), 4);
    assert!(pre.matches(&prefixed));

    // Null name: every name (of the allowed pattern types).
    assert!(filter(None, MATCH).matches(&other));
    assert!(filter(None, 4).matches(&prefixed) && !filter(None, 4).matches(&literal));

    // Resource type and entry fields.
    let mut group = literal.clone();
    group.resource_type = ResourceType::Group;
    assert!(!m.matches(&group));
    let by_principal =
        AclBindingFilter::from_wire(1, None, 1, Some("User:b"), None, ANY, ANY).unwrap();
    assert!(!by_principal.matches(&literal));
    let by_op = AclBindingFilter::from_wire(1, None, 1, None, Some("*"), 3, 3).unwrap();
    assert!(by_op.matches(&literal));
    let by_deny = AclBindingFilter::from_wire(1, None, 1, None, None, ANY, 2).unwrap();
    assert!(!by_deny.matches(&literal));
}

#[test]
fn index_finds_literal_wildcard_and_prefixes() {
    let set: BTreeSet<_> = [
        binding("orders", PatternType::Literal, "User:a", AclOperation::Read),
        binding("*", PatternType::Literal, "User:b", AclOperation::Read),
        binding("or", PatternType::Prefixed, "User:c", AclOperation::Read),
        binding(
            "orders-eu",
            PatternType::Prefixed,
            "User:d",
            AclOperation::Read,
        ),
        binding("x", PatternType::Prefixed, "User:e", AclOperation::Read),
    ]
    .into_iter()
    .collect();
    let index = AclIndex::new(set);
    let mut principals: Vec<_> = index
        .entries_for(ResourceType::Topic, "orders")
        .map(|e| e.principal.clone())
        .collect();
    principals.sort();
    assert_eq!(principals, ["User:a", "User:b", "User:c"]);
    assert_eq!(index.entries_for(ResourceType::Group, "orders").count(), 0);
    assert_eq!(
        index
            .entries_for(ResourceType::Topic, "orders-eu-1")
            .count(),
        3
    );
}

#[test]
fn store_creates_describes_deletes_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = AclStore::open(dir.path()).unwrap();
    assert!(store.is_empty());
    let a = binding("a", PatternType::Literal, "User:x", AclOperation::Read);
    let b = binding("a", PatternType::Prefixed, "User:y", AclOperation::Write);
    let c = binding("b", PatternType::Literal, "User:y", AclOperation::Write);
    store.create(&[a.clone(), b.clone(), c.clone()]).unwrap();
    store.create(std::slice::from_ref(&a)).unwrap(); // idempotent
    assert!(!store.is_empty());
    assert_eq!(store.describe(&AclBindingFilter::any()).len(), 3);
    assert_eq!(
        store.describe(&filter(Some("a"), MATCH)),
        vec![a.clone(), b.clone()]
    );
    drop(store);

    let store = AclStore::open(dir.path()).unwrap();
    assert_eq!(store.describe(&AclBindingFilter::any()).len(), 3);
    let deleted = store
        .delete(&[filter(Some("a"), MATCH), filter(Some("a"), 3)])
        .unwrap();
    assert_eq!(deleted, vec![vec![a.clone(), b.clone()], vec![a.clone()]]);
    assert_eq!(store.describe(&AclBindingFilter::any()), vec![c.clone()]);
    drop(store);

    let store = AclStore::open(dir.path()).unwrap();
    assert_eq!(store.describe(&AclBindingFilter::any()), vec![c]);
    store.delete(&[AclBindingFilter::any()]).unwrap();
    assert!(store.is_empty());
}

#[test]
fn a_failed_persist_changes_nothing_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let store = AclStore::open(dir.path()).unwrap();
    let a = binding("a", PatternType::Literal, "User:x", AclOperation::Read);
    store.create(std::slice::from_ref(&a)).unwrap();
    // A directory in place of the file makes the rename fail, even for root.
    let path = dir.path().join("acls.json");
    std::fs::remove_file(&path).unwrap();
    std::fs::create_dir(&path).unwrap();

    let b = binding("b", PatternType::Literal, "User:x", AclOperation::Read);
    assert!(store.create(std::slice::from_ref(&b)).is_err());
    assert_eq!(store.describe(&AclBindingFilter::any()), vec![a.clone()]);
    assert!(store.delete(&[AclBindingFilter::any()]).is_err());
    assert_eq!(store.describe(&AclBindingFilter::any()), vec![a.clone()]);
    assert!(!store.is_empty());
    assert_eq!(store.snapshot().bindings().len(), 1);
}
