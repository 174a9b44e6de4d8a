//! ACL bindings (KIP-140): a resource pattern (type, name, LITERAL or PREFIXED) plus an access
//! control entry (principal, host, operation, ALLOW/DENY); filters over them for DescribeAcls
//! and DeleteAcls; and `AclStore`, the persisted set of bindings.
//!
//! File format: `data/meta/acls.json`, `{"acls": [binding, ...]}` with Kafka's enum names
//! ("TOPIC", "PREFIXED", "READ", "ALLOW"), rewritten whole through a temp file, fsync, rename and
//! directory fsync (`durable::replace_file`) on every change, like `metadata/store.rs`. ACL
//! changes are rare; reads are on every request.
//!
//! Thread-safety: writers serialise on a mutex, build the new set on a copy, persist it, and only
//! then publish it as an immutable `AclIndex` snapshot, so a failed write changes nothing in
//! memory; the authorizer only clones the snapshot's `Arc` under a read lock held for a few
//! instructions, so request handlers never wait on a writer's fsync.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};

/// Kafka's `ResourceType` (wire codes: UNKNOWN 0, ANY 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ResourceType {
    Topic = 2,
    Group = 3,
    Cluster = 4,
    TransactionalId = 5,
    DelegationToken = 6,
    User = 7,
}

/// Kafka's `PatternType` of a stored binding (filters add ANY 1 and MATCH 2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PatternType {
    Literal = 3,
    Prefixed = 4,
}

/// Kafka's `AclOperation` (wire codes: UNKNOWN 0, ANY 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AclOperation {
    All = 2,
    Read = 3,
    Write = 4,
    Create = 5,
    Delete = 6,
    Alter = 7,
    Describe = 8,
    ClusterAction = 9,
    DescribeConfigs = 10,
    AlterConfigs = 11,
    IdempotentWrite = 12,
    CreateTokens = 13,
    DescribeTokens = 14,
}

/// Kafka's `AclPermissionType` (wire codes: UNKNOWN 0, ANY 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PermissionType {
    Deny = 2,
    Allow = 3,
}

/// Wire code 1 in every ACL enum: "any value" in a filter.
pub const ANY: i8 = 1;
/// Pattern-type filter code 2: every binding that would apply to the named resource.
pub const MATCH: i8 = 2;
/// The literal resource name that stands for every resource of its type.
pub const WILDCARD: &str = "*";
/// The principal that stands for every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";
/// The only name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";

impl ResourceType {
    pub fn from_code(code: i8) -> Option<Self> {
        use ResourceType::*;
        Some(match code {
            2 => Topic,
            3 => Group,
            4 => Cluster,
            5 => TransactionalId,
            6 => DelegationToken,
            7 => User,
            _ => return None,
        })
    }
    pub fn code(self) -> i8 {
        self as i8
    }
}

impl PatternType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            3 => Some(PatternType::Literal),
            4 => Some(PatternType::Prefixed),
            _ => None,
        }
    }
    pub fn code(self) -> i8 {
        self as i8
    }
}

impl AclOperation {
    pub fn from_code(code: i8) -> Option<Self> {
        use AclOperation::*;
        Some(match code {
            2 => All,
            3 => Read,
            4 => Write,
            5 => Create,
            6 => Delete,
            7 => Alter,
            8 => Describe,
            9 => ClusterAction,
            10 => DescribeConfigs,
            11 => AlterConfigs,
            12 => IdempotentWrite,
            13 => CreateTokens,
            14 => DescribeTokens,
            _ => return None,
        })
    }
    pub fn code(self) -> i8 {
        self as i8
    }
}

impl PermissionType {
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            2 => Some(PermissionType::Deny),
            3 => Some(PermissionType::Allow),
            _ => None,
        }
    }
    pub fn code(self) -> i8 {
        self as i8
    }
}

/// One ACL: who (principal, host) may or may not (permission) do what (operation) to which
/// resources (type, name, pattern type).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// Why a binding or filter from a request is refused: Kafka answers INVALID_REQUEST with this.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidAcl(pub String);

impl AclBinding {
    /// Builds a binding to create from wire fields, with Kafka's validation
    /// (`AclControlManager.validateNewAcl`): no UNKNOWN/ANY/MATCH values, a non-empty resource
    /// name, a `Type:name` principal.
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: &str,
        pattern_type: i8,
        principal: &str,
        host: &str,
        operation: i8,
        permission: i8,
    ) -> Result<AclBinding, InvalidAcl> {
        let resource_type = ResourceType::from_code(resource_type)
            .ok_or_else(|| InvalidAcl(format!("Invalid resourceType {resource_type}")))?;
        let pattern_type = PatternType::from_code(pattern_type)
            .ok_or_else(|| InvalidAcl(format!("Invalid patternType {pattern_type}")))?;
        let operation = AclOperation::from_code(operation)
            .ok_or_else(|| InvalidAcl(format!("Invalid operation {operation}")))?;
        let permission = PermissionType::from_code(permission)
            .ok_or_else(|| InvalidAcl(format!("Invalid permissionType {permission}")))?;
        if resource_name.is_empty() {
            return Err(InvalidAcl("Resource name should not be empty".into()));
        }
        if resource_type == ResourceType::Cluster && resource_name != CLUSTER_NAME {
            return Err(InvalidAcl(format!(
                "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            )));
        }
        validate_principal(principal)?;
        if host.is_empty() {
            return Err(InvalidAcl(
                "Host should not be empty (use * for any host)".into(),
            ));
        }
        Ok(AclBinding {
            resource_type,
            resource_name: resource_name.to_string(),
            pattern_type,
            principal: principal.to_string(),
            host: host.to_string(),
            operation,
            permission,
        })
    }
}

/// A principal is `Type:name` with a non-empty type (Kafka's `SecurityUtils.parseKafkaPrincipal`).
fn validate_principal(principal: &str) -> Result<(), InvalidAcl> {
    match principal.split_once(':') {
        Some((kind, _)) if !kind.is_empty() => Ok(()),
        _ => Err(InvalidAcl(format!(
            "Could not parse principal from `{principal}` (no colon is present separating the \
             principal type from the principal name)"
        ))),
    }
}

/// Pattern-type part of a filter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PatternFilter {
    Any,
    /// Bindings that would apply to the named resource: the literal name, the literal
    /// wildcard, and every prefix of it.
    Match,
    Exactly(PatternType),
}

/// A filter over bindings; `None` fields match anything (ANY codes, null strings).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclBindingFilter {
    pub resource_type: Option<ResourceType>,
    pub resource_name: Option<String>,
    pub pattern: PatternFilter,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: Option<AclOperation>,
    pub permission: Option<PermissionType>,
}

impl AclBindingFilter {
    /// Builds a filter from wire fields; UNKNOWN (or out-of-range) codes are refused as Kafka
    /// does ("Unknown patternFilter." / "Unknown entryFilter.").
    #[allow(clippy::too_many_arguments)]
    pub fn from_wire(
        resource_type: i8,
        resource_name: Option<&str>,
        pattern_type: i8,
        principal: Option<&str>,
        host: Option<&str>,
        operation: i8,
        permission: i8,
    ) -> Result<AclBindingFilter, InvalidAcl> {
        let unknown_pattern = || InvalidAcl("Unknown patternFilter.".into());
        let unknown_entry = || InvalidAcl("Unknown entryFilter.".into());
        let resource_type = match resource_type {
            ANY => None,
            code => Some(ResourceType::from_code(code).ok_or_else(unknown_pattern)?),
        };
        let pattern = match pattern_type {
            ANY => PatternFilter::Any,
            MATCH => PatternFilter::Match,
            code => {
                PatternFilter::Exactly(PatternType::from_code(code).ok_or_else(unknown_pattern)?)
            }
        };
        let operation = match operation {
            ANY => None,
            code => Some(AclOperation::from_code(code).ok_or_else(unknown_entry)?),
        };
        let permission = match permission {
            ANY => None,
            code => Some(PermissionType::from_code(code).ok_or_else(unknown_entry)?),
        };
        Ok(AclBindingFilter {
            resource_type,
            resource_name: resource_name.map(str::to_string),
            pattern,
            principal: principal.map(str::to_string),
            host: host.map(str::to_string),
            operation,
            permission,
        })
    }

    /// A filter matching every binding.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: None,
            resource_name: None,
            pattern: PatternFilter::Any,
            principal: None,
            host: None,
            operation: None,
            permission: None,
        }
    }

    /// Kafka's `AclBindingFilter.matches`: resource pattern filter, then entry filter (exact
    /// equality of the given fields; filters do not expand wildcards of the entry).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.matches_pattern(binding) && self.matches_entry(binding)
    }

    fn matches_pattern(&self, b: &AclBinding) -> bool {
        if self.resource_type.is_some_and(|t| t != b.resource_type) {
            return false;
        }
        if let PatternFilter::Exactly(p) = self.pattern {
            if p != b.pattern_type {
                return false;
            }
        }
        let Some(name) = &self.resource_name else {
            return true;
        };
        match self.pattern {
            PatternFilter::Any | PatternFilter::Exactly(_) => *name == b.resource_name,
            PatternFilter::Match => match b.pattern_type {
                PatternType::Literal => *name == b.resource_name || b.resource_name == WILDCARD,
                PatternType::Prefixed => name.starts_with(&b.resource_name),
            },
        }
    }

    fn matches_entry(&self, b: &AclBinding) -> bool {
        self.principal.as_ref().is_none_or(|p| *p == b.principal)
            && self.host.as_ref().is_none_or(|h| *h == b.host)
            && self.operation.is_none_or(|o| o == b.operation)
            && self.permission.is_none_or(|p| p == b.permission)
    }
}

/// The access control entry part of a binding, as the authorizer needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AclEntry {
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission: PermissionType,
}

/// An immutable view of all bindings, indexed for the authorizer: literal bindings by (type,
/// name), prefixed ones by (type, prefix) together with the set of prefix lengths in use, so a
/// lookup probes only prefix lengths that exist.
#[derive(Default, Debug)]
pub struct AclIndex {
    bindings: BTreeSet<AclBinding>,
    literal: HashMap<(ResourceType, String), Vec<AclEntry>>,
    prefixed: HashMap<(ResourceType, String), Vec<AclEntry>>,
    prefix_lengths: HashMap<ResourceType, BTreeSet<usize>>,
}

impl AclIndex {
    pub fn new(bindings: BTreeSet<AclBinding>) -> AclIndex {
        let mut index = AclIndex::default();
        for b in &bindings {
            let entry = AclEntry {
                principal: b.principal.clone(),
                host: b.host.clone(),
                operation: b.operation,
                permission: b.permission,
            };
            let key = (b.resource_type, b.resource_name.clone());
            match b.pattern_type {
                PatternType::Literal => index.literal.entry(key).or_default().push(entry),
                PatternType::Prefixed => {
                    index
                        .prefix_lengths
                        .entry(b.resource_type)
                        .or_default()
                        .insert(b.resource_name.len());
                    index.prefixed.entry(key).or_default().push(entry);
                }
            }
        }
        index.bindings = bindings;
        index
    }

    pub fn is_empty(&self) -> bool {
        self.bindings.is_empty()
    }

    pub fn bindings(&self) -> &BTreeSet<AclBinding> {
        &self.bindings
    }

    /// Every entry whose pattern applies to the resource: literal name, literal `*`, and each
    /// prefixed pattern the name starts with.
    pub fn entries_for<'a>(
        &'a self,
        resource_type: ResourceType,
        name: &str,
    ) -> impl Iterator<Item = &'a AclEntry> + 'a {
        let mut lists: Vec<&'a Vec<AclEntry>> = Vec::new();
        let mut key = (resource_type, name.to_string());
        if let Some(l) = self.literal.get(&key) {
            lists.push(l);
        }
        if name != WILDCARD {
            key.1 = WILDCARD.to_string();
            if let Some(l) = self.literal.get(&key) {
                lists.push(l);
            }
        }
        if let Some(lengths) = self.prefix_lengths.get(&resource_type) {
            for &len in lengths.iter().take_while(|&&len| len <= name.len()) {
                if !name.is_char_boundary(len) {
                    continue;
                }
                key.1 = name[..len].to_string();
                if let Some(l) = self.prefixed.get(&key) {
                    lists.push(l);
                }
            }
        }
        lists.into_iter().flatten()
    }
}

/// The persisted ACL bindings, with a snapshot for lock-free-ish reads.
pub struct AclStore {
    path: PathBuf,
    /// Serialises writers; holds the authoritative set.
    writer: Mutex<BTreeSet<AclBinding>>,
    snapshot: RwLock<Arc<AclIndex>>,
    /// True while there are no bindings at all: the authorizer's fast path.
    empty: AtomicBool,
}

#[derive(Serialize, Deserialize, Default)]
struct AclFile {
    acls: Vec<AclBinding>,
}

impl AclStore {
    /// Opens (or creates) `meta_dir/acls.json`.
    pub fn open(meta_dir: &Path) -> anyhow::Result<AclStore> {
        std::fs::create_dir_all(meta_dir)
            .with_context(|| format!("creating {}", meta_dir.display()))?;
        let path = meta_dir.join("acls.json");
        let bindings: BTreeSet<AclBinding> = if path.exists() {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let file: AclFile = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            file.acls.into_iter().collect()
        } else {
            BTreeSet::new()
        };
        let store = AclStore {
            path,
            empty: AtomicBool::new(bindings.is_empty()),
            snapshot: RwLock::new(Arc::new(AclIndex::new(bindings.clone()))),
            writer: Mutex::new(bindings),
        };
        Ok(store)
    }

    /// The current bindings, indexed.
    pub fn snapshot(&self) -> Arc<AclIndex> {
        self.snapshot.read().clone()
    }

    /// True when no binding exists (one atomic load).
    pub fn is_empty(&self) -> bool {
        self.empty.load(Ordering::Acquire)
    }

    /// Adds bindings (existing ones are left as they are) and persists.
    pub fn create(&self, bindings: &[AclBinding]) -> anyhow::Result<()> {
        let mut current = self.writer.lock();
        let mut next = current.clone();
        next.extend(bindings.iter().cloned());
        if next.len() != current.len() {
            self.commit(&mut current, next)?;
        }
        Ok(())
    }

    /// Bindings matching any of `filters`, as one list per filter (a binding matched by two
    /// filters is reported by both, as Kafka does).
    pub fn describe(&self, filter: &AclBindingFilter) -> Vec<AclBinding> {
        self.snapshot()
            .bindings()
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Removes every binding matched by any filter, atomically; returns, per filter, the
    /// bindings it matched.
    pub fn delete(&self, filters: &[AclBindingFilter]) -> anyhow::Result<Vec<Vec<AclBinding>>> {
        let mut current = self.writer.lock();
        let matched: Vec<Vec<AclBinding>> = filters
            .iter()
            .map(|f| current.iter().filter(|b| f.matches(b)).cloned().collect())
            .collect();
        if matched.iter().any(|m| !m.is_empty()) {
            let mut next = current.clone();
            for b in matched.iter().flatten() {
                next.remove(b);
            }
            self.commit(&mut current, next)?;
        }
        Ok(matched)
    }

    /// Persists `next`, then makes it the current set and snapshot.
    fn commit(
        &self,
        current: &mut BTreeSet<AclBinding>,
        next: BTreeSet<AclBinding>,
    ) -> anyhow::Result<()> {
        self.persist(&next)?;
        *self.snapshot.write() = Arc::new(AclIndex::new(next.clone()));
        self.empty.store(next.is_empty(), Ordering::Release);
        *current = next;
        Ok(())
    }

    fn persist(&self, bindings: &BTreeSet<AclBinding>) -> anyhow::Result<()> {
        let file = AclFile {
            acls: bindings.iter().cloned().collect(),
        };
        crate::durable::replace_file(&self.path, &serde_json::to_vec_pretty(&file)?)
            .with_context(|| format!("writing {}", self.path.display()))
    }
}

#[cfg(test)]
#[path = "acl_tests.rs"]
mod tests;
