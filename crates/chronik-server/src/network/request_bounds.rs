//! Pre-decode validation of request frames: every array length must fit in the bytes left.
//!
//! kafka-protocol's decoders call `Vec::with_capacity(n)` with the element count read off the
//! wire, before decoding a single element. A few bytes claiming 2^31-1 topics make the broker
//! ask for ~150 GB; when the allocator refuses (an address-space limit, strict overcommit), Rust
//! aborts the whole process — no panic to catch. So before a frame reaches the decoder, this
//! module walks it with the request schemas below (field types and the versions they exist in,
//! as the Kafka message definitions give them) and refuses a frame in which any array claims more
//! elements than the remaining bytes could hold (each element takes at least its minimum wire
//! size). Kafka's own decoders make the same check.
//!
//! The walk only ever refuses impossible lengths; any other malformation (truncation, bad
//! tags, negative lengths) is left to the real decoder, which fails cleanly on it. APIs with no
//! schema here are passed through; their requests have no arrays, or are not handled yet.

use kafka_protocol::messages::ApiKey;

/// A field's wire type. `Str`, `Bytes` and `Array` are compact in flexible versions.
#[derive(Clone, Copy)]
enum Ty {
    I8,
    I16,
    I32,
    I64,
    Uuid,
    Str,
    Bytes,
    Array(&'static Ty),
    Struct(&'static Struct),
}

/// A field and the request versions it is present in (inclusive).
struct Field(Ty, i16, i16);

/// A struct: its fields in wire order, then (flexible versions) its tagged fields, of which the
/// decoder reads the known ones — (tag, first version, type) — by type rather than by size.
struct Struct {
    fields: &'static [Field],
    tagged: &'static [(u32, i16, Ty)],
}

const ALL: i16 = i16::MAX;

const fn all(ty: Ty) -> Field {
    Field(ty, 0, ALL)
}
const fn since(v: i16, ty: Ty) -> Field {
    Field(ty, v, ALL)
}
const fn until(v: i16, ty: Ty) -> Field {
    Field(ty, 0, v)
}
const fn st(fields: &'static [Field]) -> Struct {
    Struct {
        fields,
        tagged: &[],
    }
}

use Ty::*;

// Produce (0)
static PRODUCE_PARTITION: Struct = st(&[all(I32), all(Bytes)]);
static PRODUCE_TOPIC: Struct = st(&[
    until(12, Str),
    since(13, Uuid),
    all(Array(&Struct(&PRODUCE_PARTITION))),
]);
static PRODUCE: Struct = st(&[
    all(Str),
    all(I16),
    all(I32),
    all(Array(&Struct(&PRODUCE_TOPIC))),
]);

// Fetch (1)
static FETCH_PARTITION: Struct = Struct {
    fields: &[
        all(I32),
        since(9, I32),
        all(I64),
        since(12, I32),
        since(5, I64),
        all(I32),
    ],
    tagged: &[(0, 17, Uuid), (1, 18, I64)],
};
static FETCH_TOPIC: Struct = st(&[
    until(12, Str),
    since(13, Uuid),
    all(Array(&Struct(&FETCH_PARTITION))),
]);
static FORGOTTEN_TOPIC: Struct = st(&[Field(Str, 7, 12), since(13, Uuid), since(7, Array(&I32))]);
static REPLICA_STATE: Struct = st(&[since(15, I32), since(15, I64)]);
static FETCH: Struct = Struct {
    fields: &[
        until(14, I32),
        all(I32),
        all(I32),
        all(I32),
        all(I8),
        since(7, I32),
        since(7, I32),
        all(Array(&Struct(&FETCH_TOPIC))),
        since(7, Array(&Struct(&FORGOTTEN_TOPIC))),
        since(11, Str),
    ],
    tagged: &[(0, 12, Str), (1, 15, Struct(&REPLICA_STATE))],
};

// ListOffsets (2)
static LIST_OFFSETS_PARTITION: Struct = st(&[all(I32), since(4, I32), all(I64)]);
static LIST_OFFSETS_TOPIC: Struct = st(&[all(Str), all(Array(&Struct(&LIST_OFFSETS_PARTITION)))]);
static LIST_OFFSETS: Struct = st(&[
    all(I32),
    since(2, I8),
    all(Array(&Struct(&LIST_OFFSETS_TOPIC))),
    since(10, I32),
]);

// Metadata (3)
static METADATA_TOPIC: Struct = st(&[since(10, Uuid), all(Str)]);
static METADATA: Struct = st(&[
    all(Array(&Struct(&METADATA_TOPIC))),
    since(4, I8),
    Field(I8, 8, 10),
    since(8, I8),
]);

// OffsetCommit (8)
static OFFSET_COMMIT_PARTITION: Struct = st(&[all(I32), all(I64), since(6, I32), all(Str)]);
static OFFSET_COMMIT_TOPIC: Struct = st(&[all(Str), all(Array(&Struct(&OFFSET_COMMIT_PARTITION)))]);
static OFFSET_COMMIT: Struct = st(&[
    all(Str),
    all(I32),
    all(Str),
    since(7, Str),
    until(4, I64),
    all(Array(&Struct(&OFFSET_COMMIT_TOPIC))),
]);

// OffsetFetch (9)
static OFFSET_FETCH_TOPIC: Struct = st(&[until(7, Str), until(7, Array(&I32))]);
static OFFSET_FETCH_GROUP_TOPIC: Struct = st(&[since(8, Str), since(8, Array(&I32))]);
static OFFSET_FETCH_GROUP: Struct = st(&[
    since(8, Str),
    since(9, Str),
    since(9, I32),
    since(8, Array(&Struct(&OFFSET_FETCH_GROUP_TOPIC))),
]);
static OFFSET_FETCH: Struct = st(&[
    until(7, Str),
    until(7, Array(&Struct(&OFFSET_FETCH_TOPIC))),
    since(8, Array(&Struct(&OFFSET_FETCH_GROUP))),
    since(7, I8),
]);

// FindCoordinator (10)
static FIND_COORDINATOR: Struct = st(&[until(3, Str), since(1, I8), since(4, Array(&Str))]);

// JoinGroup (11)
static JOIN_GROUP_PROTOCOL: Struct = st(&[all(Str), all(Bytes)]);
static JOIN_GROUP: Struct = st(&[
    all(Str),
    all(I32),
    since(1, I32),
    all(Str),
    since(5, Str),
    all(Str),
    all(Array(&Struct(&JOIN_GROUP_PROTOCOL))),
    since(8, Str),
]);

// LeaveGroup (13)
static MEMBER_IDENTITY: Struct = st(&[since(3, Str), since(3, Str), since(5, Str)]);
static LEAVE_GROUP: Struct = st(&[
    all(Str),
    until(2, Str),
    since(3, Array(&Struct(&MEMBER_IDENTITY))),
]);

// SyncGroup (14)
static SYNC_GROUP_ASSIGNMENT: Struct = st(&[all(Str), all(Bytes)]);
static SYNC_GROUP: Struct = st(&[
    all(Str),
    all(I32),
    all(Str),
    since(3, Str),
    since(5, Str),
    since(5, Str),
    all(Array(&Struct(&SYNC_GROUP_ASSIGNMENT))),
]);

// DescribeGroups (15), ListGroups (16)
static DESCRIBE_GROUPS: Struct = st(&[all(Array(&Str)), since(3, I8)]);
static LIST_GROUPS: Struct = st(&[since(4, Array(&Str)), since(5, Array(&Str))]);

// CreateTopics (19)
static CREATABLE_ASSIGNMENT: Struct = st(&[all(I32), all(Array(&I32))]);
static CREATABLE_CONFIG: Struct = st(&[all(Str), all(Str)]);
static CREATABLE_TOPIC: Struct = st(&[
    all(Str),
    all(I32),
    all(I16),
    all(Array(&Struct(&CREATABLE_ASSIGNMENT))),
    all(Array(&Struct(&CREATABLE_CONFIG))),
]);
static CREATE_TOPICS: Struct = st(&[all(Array(&Struct(&CREATABLE_TOPIC))), all(I32), all(I8)]);

// DeleteTopics (20)
static DELETE_TOPIC_STATE: Struct = st(&[since(6, Str), since(6, Uuid)]);
static DELETE_TOPICS: Struct = st(&[
    since(6, Array(&Struct(&DELETE_TOPIC_STATE))),
    until(5, Array(&Str)),
    all(I32),
]);

// DeleteRecords (21)
static DELETE_RECORDS_PARTITION: Struct = st(&[all(I32), all(I64)]);
static DELETE_RECORDS_TOPIC: Struct =
    st(&[all(Str), all(Array(&Struct(&DELETE_RECORDS_PARTITION)))]);
static DELETE_RECORDS: Struct = st(&[all(Array(&Struct(&DELETE_RECORDS_TOPIC))), all(I32)]);

// OffsetForLeaderEpoch (23)
static OFFSET_FOR_LEADER_PARTITION: Struct = st(&[all(I32), all(I32), all(I32)]);
static OFFSET_FOR_LEADER_TOPIC: Struct =
    st(&[all(Str), all(Array(&Struct(&OFFSET_FOR_LEADER_PARTITION)))]);
static OFFSET_FOR_LEADER_EPOCH: Struct =
    st(&[since(3, I32), all(Array(&Struct(&OFFSET_FOR_LEADER_TOPIC)))]);

// DescribeConfigs (32)
static DESCRIBE_CONFIGS_RESOURCE: Struct = st(&[all(I8), all(Str), all(Array(&Str))]);
static DESCRIBE_CONFIGS: Struct = st(&[
    all(Array(&Struct(&DESCRIBE_CONFIGS_RESOURCE))),
    all(I8),
    since(3, I8),
]);

// AlterConfigs (33)
static ALTERABLE_CONFIG: Struct = st(&[all(Str), all(Str)]);
static ALTER_CONFIGS_RESOURCE: Struct =
    st(&[all(I8), all(Str), all(Array(&Struct(&ALTERABLE_CONFIG)))]);
static ALTER_CONFIGS: Struct = st(&[all(Array(&Struct(&ALTER_CONFIGS_RESOURCE))), all(I8)]);

// CreateAcls (30) and DeleteAcls (31): (resource type, name, pattern type, principal, host,
// operation, permission) creations / filters.
static ACL_BINDING: Struct = st(&[
    all(I8),
    all(Str),
    all(I8),
    all(Str),
    all(Str),
    all(I8),
    all(I8),
]);
static CREATE_ACLS: Struct = st(&[all(Array(&Struct(&ACL_BINDING)))]);
static DELETE_ACLS: Struct = st(&[all(Array(&Struct(&ACL_BINDING)))]);

// CreatePartitions (37)
static CREATE_PARTITIONS_ASSIGNMENT: Struct = st(&[all(Array(&I32))]);
static CREATE_PARTITIONS_TOPIC: Struct = st(&[
    all(Str),
    all(I32),
    all(Array(&Struct(&CREATE_PARTITIONS_ASSIGNMENT))),
]);
static CREATE_PARTITIONS: Struct = st(&[
    all(Array(&Struct(&CREATE_PARTITIONS_TOPIC))),
    all(I32),
    all(I8),
]);

// DeleteGroups (42)
static DELETE_GROUPS: Struct = st(&[all(Array(&Str))]);

// ElectLeaders (43): the election type (from v1), topics of (name, partitions), timeout.
static ELECT_LEADERS_TOPIC: Struct = st(&[all(Str), all(Array(&I32))]);
static ELECT_LEADERS: Struct = st(&[
    since(1, I8),
    all(Array(&Struct(&ELECT_LEADERS_TOPIC))),
    all(I32),
]);

// IncrementalAlterConfigs (44)
static INCREMENTAL_CONFIG: Struct = st(&[all(Str), all(I8), all(Str)]);
static INCREMENTAL_RESOURCE: Struct =
    st(&[all(I8), all(Str), all(Array(&Struct(&INCREMENTAL_CONFIG)))]);
static INCREMENTAL_ALTER_CONFIGS: Struct =
    st(&[all(Array(&Struct(&INCREMENTAL_RESOURCE))), all(I8)]);

// DescribeLogDirs (35): topics of (name, partition indexes); null = all.
static DESCRIBABLE_LOG_DIR_TOPIC: Struct = st(&[all(Str), all(Array(&I32))]);
static DESCRIBE_LOG_DIRS: Struct = st(&[all(Array(&Struct(&DESCRIBABLE_LOG_DIR_TOPIC)))]);

// AlterPartitionReassignments (45): timeout, the replication-factor-change flag (from v1),
// topics of (name, partitions of (index, replicas; null cancels)).
static REASSIGNABLE_PARTITION: Struct = st(&[all(I32), all(Array(&I32))]);
static REASSIGNABLE_TOPIC: Struct = st(&[all(Str), all(Array(&Struct(&REASSIGNABLE_PARTITION)))]);
static ALTER_PARTITION_REASSIGNMENTS: Struct = st(&[
    all(I32),
    since(1, I8),
    all(Array(&Struct(&REASSIGNABLE_TOPIC))),
]);

// ListPartitionReassignments (46): timeout, topics of (name, partition indexes); null = all.
static LIST_REASSIGNMENTS_TOPIC: Struct = st(&[all(Str), all(Array(&I32))]);
static LIST_PARTITION_REASSIGNMENTS: Struct =
    st(&[all(I32), all(Array(&Struct(&LIST_REASSIGNMENTS_TOPIC)))]);

// OffsetDelete (47)
static OFFSET_DELETE_PARTITION: Struct = st(&[all(I32)]);
static OFFSET_DELETE_TOPIC: Struct = st(&[all(Str), all(Array(&Struct(&OFFSET_DELETE_PARTITION)))]);
static OFFSET_DELETE: Struct = st(&[all(Str), all(Array(&Struct(&OFFSET_DELETE_TOPIC)))]);

// DescribeUserScramCredentials (50): users of (name); null = all.
static SCRAM_USER: Struct = st(&[all(Str)]);
static DESCRIBE_USER_SCRAM_CREDENTIALS: Struct = st(&[all(Array(&Struct(&SCRAM_USER)))]);

// AlterUserScramCredentials (51): deletions of (name, mechanism), upsertions of (name,
// mechanism, iterations, salt, salted password).
static SCRAM_DELETION: Struct = st(&[all(Str), all(I8)]);
static SCRAM_UPSERTION: Struct = st(&[all(Str), all(I8), all(I32), all(Bytes), all(Bytes)]);
static ALTER_USER_SCRAM_CREDENTIALS: Struct = st(&[
    all(Array(&Struct(&SCRAM_DELETION))),
    all(Array(&Struct(&SCRAM_UPSERTION))),
]);

// DescribeClientQuotas (48): components of (entity type, match type, match), strict.
static QUOTA_COMPONENT: Struct = st(&[all(Str), all(I8), all(Str)]);
static DESCRIBE_CLIENT_QUOTAS: Struct = st(&[all(Array(&Struct(&QUOTA_COMPONENT))), all(I8)]);

// AlterClientQuotas (49): entries of (entity of (type, name), ops of (key, value as a
// float64, remove)), validate_only.
static QUOTA_ENTITY: Struct = st(&[all(Str), all(Str)]);
static QUOTA_OP: Struct = st(&[all(Str), all(I64), all(I8)]);
static QUOTA_ENTRY: Struct = st(&[
    all(Array(&Struct(&QUOTA_ENTITY))),
    all(Array(&Struct(&QUOTA_OP))),
]);
static ALTER_CLIENT_QUOTAS: Struct = st(&[all(Array(&Struct(&QUOTA_ENTRY))), all(I8)]);

// DescribeQuorum (55): topics of (name, partitions of (index)).
static DESCRIBE_QUORUM_PARTITION: Struct = st(&[all(I32)]);
static DESCRIBE_QUORUM_TOPIC: Struct =
    st(&[all(Str), all(Array(&Struct(&DESCRIBE_QUORUM_PARTITION)))]);
static DESCRIBE_QUORUM: Struct = st(&[all(Array(&Struct(&DESCRIBE_QUORUM_TOPIC)))]);

// ListConfigResources (74): resource types, from v1.
static LIST_CONFIG_RESOURCES: Struct = st(&[since(1, Array(&I8))]);

// DescribeTopicPartitions (75): topics of (name) and the partition limit; the cursor after
// them holds no array.
static DESCRIBE_TOPIC_PARTITIONS_TOPIC: Struct = st(&[all(Str)]);
static DESCRIBE_TOPIC_PARTITIONS: Struct = st(&[
    all(Array(&Struct(&DESCRIBE_TOPIC_PARTITIONS_TOPIC))),
    all(I32),
]);

fn schema(key: ApiKey) -> Option<&'static Struct> {
    Some(match key {
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::Metadata => &METADATA,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::DeleteRecords => &DELETE_RECORDS,
        ApiKey::OffsetForLeaderEpoch => &OFFSET_FOR_LEADER_EPOCH,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::AlterConfigs => &ALTER_CONFIGS,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::ElectLeaders => &ELECT_LEADERS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::DescribeLogDirs => &DESCRIBE_LOG_DIRS,
        ApiKey::AlterPartitionReassignments => &ALTER_PARTITION_REASSIGNMENTS,
        ApiKey::ListPartitionReassignments => &LIST_PARTITION_REASSIGNMENTS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::CreateAcls => &CREATE_ACLS,
        ApiKey::DeleteAcls => &DELETE_ACLS,
        ApiKey::DescribeUserScramCredentials => &DESCRIBE_USER_SCRAM_CREDENTIALS,
        ApiKey::AlterUserScramCredentials => &ALTER_USER_SCRAM_CREDENTIALS,
        ApiKey::DescribeClientQuotas => &DESCRIBE_CLIENT_QUOTAS,
        ApiKey::AlterClientQuotas => &ALTER_CLIENT_QUOTAS,
        ApiKey::DescribeQuorum => &DESCRIBE_QUORUM,
        ApiKey::ListConfigResources => &LIST_CONFIG_RESOURCES,
        ApiKey::DescribeTopicPartitions => &DESCRIBE_TOPIC_PARTITIONS,
        _ => return None,
    })
}

/// Why a frame was refused before decoding.
#[derive(Debug, PartialEq, Eq)]
pub enum Refused {
    /// Shorter than the fixed part of a request header.
    TooShort,
    /// An array claims more elements than the rest of the frame can hold.
    ImpossibleArrayLength,
}

impl Refused {
    pub fn reason(&self) -> &'static str {
        match self {
            Refused::TooShort => "frame shorter than a request header",
            Refused::ImpossibleArrayLength => "array length exceeds the frame",
        }
    }
}

/// The walk stopped: either the frame is refused, or it is malformed in a way the decoder
/// itself reports (`Leave`), so there is nothing more to check.
enum Stop {
    Refuse(Refused),
    Leave,
}

impl From<Refused> for Stop {
    fn from(r: Refused) -> Self {
        Stop::Refuse(r)
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    version: i16,
    flexible: bool,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Result<&[u8], Stop> {
        if self.buf.len() < n {
            return Err(Stop::Leave);
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn i16(&mut self) -> Result<i16, Stop> {
        Ok(i16::from_be_bytes(self.take(2)?.try_into().unwrap()))
    }

    fn i32(&mut self) -> Result<i32, Stop> {
        Ok(i32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }

    fn varint(&mut self) -> Result<u32, Stop> {
        let mut value: u32 = 0;
        // As kafka-protocol reads it: at most 5 bytes, high bits dropped, no overlong error.
        for i in 0..5 {
            let b = self.take(1)?[0];
            value |= ((b & 0x7f) as u32) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        Ok(value)
    }

    /// A string or bytes field: skipped by its length; null and negatives read nothing.
    fn skip_sized(&mut self, short_len: bool) -> Result<(), Stop> {
        let len = if self.flexible {
            self.varint()? as i64 - 1
        } else if short_len {
            self.i16()? as i64
        } else {
            self.i32()? as i64
        };
        if len > 0 {
            self.take(len as usize)?;
        }
        Ok(())
    }

    fn tagged_fields(&mut self, known: &[(u32, i16, Ty)]) -> Result<(), Stop> {
        let count = self.varint()?;
        for _ in 0..count {
            let tag = self.varint()?;
            let size = self.varint()?;
            match known.iter().find(|(t, _, _)| *t == tag) {
                Some((_, since, ty)) if self.version >= *since => self.value(*ty)?,
                // The decoder rejects a known tag in a version without it.
                Some(_) => return Err(Stop::Leave),
                None => {
                    self.take(size as usize)?;
                }
            }
        }
        Ok(())
    }

    fn value(&mut self, ty: Ty) -> Result<(), Stop> {
        match ty {
            I8 => self.take(1).map(drop),
            I16 => self.take(2).map(drop),
            I32 => self.take(4).map(drop),
            I64 => self.take(8).map(drop),
            Uuid => self.take(16).map(drop),
            Str => self.skip_sized(true),
            Bytes => self.skip_sized(false),
            Struct(s) => self.structure(s),
            Array(elem) => {
                let count: i64 = if self.flexible {
                    self.varint()? as i64 - 1
                } else {
                    self.i32()? as i64
                };
                if count <= 0 {
                    // Empty, null, or negative (which the decoder refuses itself).
                    return if count < -1 { Err(Stop::Leave) } else { Ok(()) };
                }
                let min = min_size(elem, self.version, self.flexible).max(1) as u64;
                if (count as u64).saturating_mul(min) > self.buf.len() as u64 {
                    return Err(Refused::ImpossibleArrayLength.into());
                }
                for _ in 0..count {
                    self.value(*elem)?;
                }
                Ok(())
            }
        }
    }

    fn structure(&mut self, s: &Struct) -> Result<(), Stop> {
        for Field(ty, min, max) in s.fields {
            if (*min..=*max).contains(&self.version) {
                self.value(*ty)?;
            }
        }
        if self.flexible {
            self.tagged_fields(s.tagged)?;
        }
        Ok(())
    }
}

/// The fewest bytes a value of `ty` takes on the wire in this version.
fn min_size(ty: &Ty, version: i16, flexible: bool) -> usize {
    match ty {
        I8 => 1,
        I16 => 2,
        I32 => 4,
        I64 => 8,
        Uuid => 16,
        Str => {
            if flexible {
                1
            } else {
                2
            }
        }
        Bytes | Array(_) => {
            if flexible {
                1
            } else {
                4
            }
        }
        Struct(s) => {
            let fields: usize = s
                .fields
                .iter()
                .filter(|Field(_, min, max)| (*min..=*max).contains(&version))
                .map(|Field(ty, _, _)| min_size(ty, version, flexible))
                .sum();
            fields + usize::from(flexible)
        }
    }
}

/// Checks a request frame (size prefix removed) before it is decoded. Ok for anything the
/// decoder can safely be given — including frames it will reject as malformed.
pub fn check_frame(frame: &[u8]) -> Result<(), Refused> {
    if frame.len() < 8 {
        return Err(Refused::TooShort);
    }
    let api_key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let Ok(key) = ApiKey::try_from(api_key) else {
        return Ok(());
    };
    let Some(body_schema) = schema(key) else {
        return Ok(());
    };
    // Versions the decoder does not know are refused by the dispatcher before decoding.
    let valid = key.valid_versions();
    if version < valid.min || version > valid.max {
        return Ok(());
    }
    let header_version = key.request_header_version(version);
    let mut reader = Reader {
        buf: &frame[8..],
        version,
        flexible: false,
    };
    let walk = (|| {
        reader.skip_sized(true)?; // client id: a non-compact nullable string in every header
        if header_version >= 2 {
            reader.flexible = true;
            reader.tagged_fields(&[])?;
        }
        reader.structure(body_schema)
    })();
    match walk {
        Err(Stop::Refuse(refused)) => Err(refused),
        Ok(()) | Err(Stop::Leave) => Ok(()),
    }
}

/// Test helper: walks a valid frame and reports how many bytes the schema left unread
/// (0 when the schema matches the encoding exactly), or None if the walk stopped early.
#[cfg(test)]
fn unread_after_walk(frame: &[u8]) -> Option<usize> {
    let key = ApiKey::try_from(i16::from_be_bytes([frame[0], frame[1]])).ok()?;
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let mut reader = Reader {
        buf: &frame[8..],
        version,
        flexible: false,
    };
    reader.skip_sized(true).ok()?;
    if key.request_header_version(version) >= 2 {
        reader.flexible = true;
        reader.tagged_fields(&[]).ok()?;
    }
    reader.structure(schema(key)?).ok()?;
    Some(reader.buf.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn frame<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(StrBytes::from_static_str("c")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, key.request_header_version(version))
            .unwrap();
        body.encode(&mut buf, version).unwrap();
        buf.to_vec()
    }

    fn name(s: &str) -> TopicName {
        TopicName(StrBytes::from_string(s.to_string()))
    }

    /// Real requests of every version pass; the same requests with an array length patched to
    /// an impossible value are refused.
    #[test]
    fn valid_requests_pass_in_every_version() {
        let key = ApiKey::Metadata;
        for v in key.valid_versions().min..=key.valid_versions().max {
            let req = MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name("a"))),
                MetadataRequestTopic::default().with_name(Some(name("bb"))),
            ]));
            assert_eq!(check_frame(&frame(key, v, &req)), Ok(()), "metadata v{v}");
            assert_eq!(
                unread_after_walk(&frame(key, v, &req)),
                Some(0),
                "metadata v{v}"
            );
        }
        let key = ApiKey::Produce;
        for v in 3..=key.valid_versions().max {
            let req = ProduceRequest::default().with_acks(1).with_topic_data(vec![
                TopicProduceData::default()
                    .with_name(name("t"))
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(bytes::Bytes::from_static(&[1, 2, 3, 4, 5])))]),
            ]);
            assert_eq!(check_frame(&frame(key, v, &req)), Ok(()), "produce v{v}");
            assert_eq!(
                unread_after_walk(&frame(key, v, &req)),
                Some(0),
                "produce v{v}"
            );
        }
        let key = ApiKey::Fetch;
        for v in key.valid_versions().min..=key.valid_versions().max {
            let req = FetchRequest::default()
                .with_max_bytes(i32::MAX)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition_max_bytes(i32::MAX)
                        .with_fetch_offset(i64::MAX)])])
                .with_rack_id(StrBytes::from_static_str("rack"));
            assert_eq!(check_frame(&frame(key, v, &req)), Ok(()), "fetch v{v}");
            assert_eq!(
                unread_after_walk(&frame(key, v, &req)),
                Some(0),
                "fetch v{v}"
            );
        }
        let key = ApiKey::CreateTopics;
        for v in key.valid_versions().min..=key.valid_versions().max {
            let req = CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(name("t"))
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1000")))])]);
            assert_eq!(
                check_frame(&frame(key, v, &req)),
                Ok(()),
                "create topics v{v}"
            );
            assert_eq!(
                unread_after_walk(&frame(key, v, &req)),
                Some(0),
                "create topics v{v}"
            );
        }
    }

    /// Every API with a schema, every version: a request with one element in each array the
    /// test fills is walked to its last byte.
    #[test]
    fn schemas_match_the_encoding_exactly() {
        use kafka_protocol::messages::delete_records_request::{
            DeleteRecordsPartition, DeleteRecordsTopic,
        };
        use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
        use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
        use kafka_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        use kafka_protocol::messages::offset_commit_request::{
            OffsetCommitRequestPartition, OffsetCommitRequestTopic,
        };
        use kafka_protocol::messages::offset_fetch_request::{
            OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
        };
        let s = |x: &str| StrBytes::from_string(x.to_string());
        fn each<T: Encodable>(key: ApiKey, req: impl Fn(i16) -> T) {
            let range = key.valid_versions();
            for v in range.min..=range.max {
                let f = frame_checked(key, v, &req(v));
                if let Some(f) = f {
                    assert_eq!(unread_after_walk(&f), Some(0), "{key:?} v{v}");
                }
            }
        }
        fn frame_checked<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Option<Vec<u8>> {
            // Response-only versions (kafka-protocol cannot encode those requests) are skipped.
            let mut buf = BytesMut::new();
            body.encode(&mut buf, version).ok()?;
            Some(frame(key, version, body))
        }
        each(ApiKey::JoinGroup, |_| {
            JoinGroupRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_protocol_type(s("consumer"))
                .with_protocols(vec![JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(bytes::Bytes::from_static(b"meta"))])
        });
        each(ApiKey::OffsetCommit, |_| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(s("g")))
                .with_topics(vec![OffsetCommitRequestTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![OffsetCommitRequestPartition::default()
                        .with_committed_offset(5)
                        .with_committed_metadata(Some(s("m")))])])
        });
        each(ApiKey::OffsetFetch, |v| {
            if v >= 8 {
                OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(Some(vec![OffsetFetchRequestTopics::default()
                        .with_name(name("t"))
                        .with_partition_indexes(vec![0, 1])]))])
            } else {
                OffsetFetchRequest::default()
                    .with_group_id(GroupId(s("g")))
                    .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                        .with_name(name("t"))
                        .with_partition_indexes(vec![0, 1])]))
            }
        });
        each(ApiKey::ListOffsets, |_| {
            ListOffsetsRequest::default().with_topics(vec![ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![ListOffsetsPartition::default().with_timestamp(-2)])])
        });
        each(ApiKey::DescribeConfigs, |_| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configuration_keys(Some(vec![s("retention.ms")])),
            ])
        });
        each(ApiKey::DeleteRecords, |_| {
            DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![DeleteRecordsPartition::default().with_offset(3)])])
        });
        each(ApiKey::DeleteTopics, |v| {
            if v >= 6 {
                DeleteTopicsRequest::default()
                    .with_topics(vec![delete_topics_request::DeleteTopicState::default()
                        .with_name(Some(name("t")))])
            } else {
                DeleteTopicsRequest::default().with_topic_names(vec![name("t")])
            }
        });
        each(ApiKey::ElectLeaders, |_| {
            ElectLeadersRequest::default()
                .with_election_type(1)
                .with_topic_partitions(Some(vec![elect_leaders_request::TopicPartitions::default(
                )
                .with_topic(name("t"))
                .with_partitions(vec![0, 1])]))
                .with_timeout_ms(5)
        });
        each(ApiKey::AlterPartitionReassignments, |_| {
            use kafka_protocol::messages::alter_partition_reassignments_request::{
                ReassignablePartition, ReassignableTopic,
            };
            AlterPartitionReassignmentsRequest::default()
                .with_timeout_ms(5)
                .with_topics(vec![ReassignableTopic::default()
                    .with_name(name("t"))
                    .with_partitions(vec![
                        ReassignablePartition::default()
                            .with_replicas(Some(vec![BrokerId(1), BrokerId(2)])),
                        ReassignablePartition::default().with_replicas(None),
                    ])])
        });
        each(ApiKey::ListPartitionReassignments, |_| {
            use kafka_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
            ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(name("t"))
                    .with_partition_indexes(vec![0, 1]),
            ]))
        });
        each(ApiKey::DescribeUserScramCredentials, |_| {
            use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
            DescribeUserScramCredentialsRequest::default()
                .with_users(Some(vec![UserName::default().with_name(s("alice"))]))
        });
        each(ApiKey::AlterUserScramCredentials, |_| {
            use kafka_protocol::messages::alter_user_scram_credentials_request::{
                ScramCredentialDeletion, ScramCredentialUpsertion,
            };
            AlterUserScramCredentialsRequest::default()
                .with_deletions(vec![ScramCredentialDeletion::default()
                    .with_name(s("bob"))
                    .with_mechanism(1)])
                .with_upsertions(vec![ScramCredentialUpsertion::default()
                    .with_name(s("alice"))
                    .with_mechanism(2)
                    .with_iterations(4096)
                    .with_salt(bytes::Bytes::from_static(b"salt"))
                    .with_salted_password(bytes::Bytes::from_static(b"salted"))])
        });
        each(ApiKey::DescribeLogDirs, |_| {
            use kafka_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
            DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(name("t"))
                    .with_partitions(vec![0, 1]),
            ]))
        });
        each(ApiKey::DescribeGroups, |_| {
            DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g"))])
        });
        each(ApiKey::FindCoordinator, |v| {
            if v >= 4 {
                FindCoordinatorRequest::default().with_coordinator_keys(vec![s("g")])
            } else {
                FindCoordinatorRequest::default().with_key(s("g"))
            }
        });
        each(ApiKey::CreateAcls, |_| {
            CreateAclsRequest::default().with_creations(vec![
                create_acls_request::AclCreation::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_resource_pattern_type(3)
                    .with_principal(s("User:a"))
                    .with_host(s("*"))
                    .with_operation(3)
                    .with_permission_type(3),
            ])
        });
        each(ApiKey::DescribeClientQuotas, |_| {
            DescribeClientQuotasRequest::default()
                .with_components(vec![
                    describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s("user"))
                        .with_match_type(0)
                        .with_match(Some(s("u"))),
                    describe_client_quotas_request::ComponentData::default()
                        .with_entity_type(s("client-id"))
                        .with_match_type(2)
                        .with_match(None),
                ])
                .with_strict(true)
        });
        each(ApiKey::AlterClientQuotas, |_| {
            use alter_client_quotas_request::{EntityData, EntryData, OpData};
            AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![
                    EntityData::default()
                        .with_entity_type(s("user"))
                        .with_entity_name(None),
                    EntityData::default()
                        .with_entity_type(s("client-id"))
                        .with_entity_name(Some(s("c"))),
                ])
                .with_ops(vec![
                    OpData::default()
                        .with_key(s("producer_byte_rate"))
                        .with_value(1024.0),
                    OpData::default()
                        .with_key(s("request_percentage"))
                        .with_remove(true),
                ])])
        });
        each(ApiKey::DeleteAcls, |_| {
            DeleteAclsRequest::default().with_filters(vec![
                delete_acls_request::DeleteAclsFilter::default()
                    .with_resource_type_filter(1)
                    .with_resource_name_filter(None)
                    .with_pattern_type_filter(1)
                    .with_principal_filter(Some(s("User:a")))
                    .with_host_filter(None)
                    .with_operation(1)
                    .with_permission_type(1),
            ])
        });
    }

    #[test]
    fn impossible_array_lengths_are_refused() {
        // Metadata v1: topics array of 2^31-1.
        let mut f = frame(ApiKey::Metadata, 1, &MetadataRequest::default());
        let n = f.len();
        f[n - 4..].copy_from_slice(&i32::MAX.to_be_bytes());
        assert_eq!(check_frame(&f), Err(Refused::ImpossibleArrayLength));
        // Metadata v12: compact array varint 2^32-1.
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 12, &MetadataRequest::default())[..]);
        f.truncate(f.len() - 4); // topics (null = 0x00), 2 bools, tagged fields
        f.put_slice(&[0xff, 0xff, 0xff, 0xff, 0x0f]);
        assert_eq!(check_frame(&f), Err(Refused::ImpossibleArrayLength));
        // Two elements claimed, two bytes each at least (v9 topic: name + tagged) — 3 left.
        let mut f = BytesMut::from(&frame(ApiKey::Metadata, 9, &MetadataRequest::default())[..]);
        f.truncate(f.len() - 5); // topics, 3 bools, tagged fields
        f.put_slice(&[0x03, 0x00, 0x00, 0x00]);
        assert_eq!(check_frame(&f), Err(Refused::ImpossibleArrayLength));
        assert_eq!(check_frame(&[0, 3, 0]), Err(Refused::TooShort));
    }
}
