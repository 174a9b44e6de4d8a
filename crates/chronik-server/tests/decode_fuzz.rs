//! Property test of the request path a connection runs on every frame
//! (`network::connection::handle_untrusted_frame`: the pre-decode bounds check, then
//! `api::handle_frame`), against a real `Broker` opened on a temp dir.
//!
//! For arbitrary bytes, for random bodies behind valid headers, and for valid requests with
//! bytes overwritten by huge lengths: the handler never panics (a panic would surface as the
//! "handler panicked" close reason) and no single allocation made while handling the frame
//! exceeds 64 MiB (a counting allocator watches this thread; the decoder used to ask for
//! hundreds of gigabytes when an array length said 2^31-1).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::{Arc, OnceLock};

use bytes::{BufMut, Bytes, BytesMut};
use chronik_server::api::{supported_versions, Outcome};
use chronik_server::broker::Broker;
use chronik_server::config::{BrokerConfig, FlushPolicy};
use chronik_server::network::connection::handle_untrusted_frame;
use chronik_server::security::Session;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, StrBytes};
use proptest::prelude::*;

/// Largest single allocation a frame of a few KiB may cause.
const ALLOCATION_LIMIT: usize = 64 << 20;

struct Watching;

thread_local! {
    static WATCH: Cell<bool> = const { Cell::new(false) };
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Watching {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
}

fn note(size: usize) {
    let _ = WATCH.try_with(|w| {
        if w.get() {
            let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
        }
    });
}

#[global_allocator]
static ALLOCATOR: Watching = Watching;

struct Fixture {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    runtime: tokio::runtime::Runtime,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let config = BrokerConfig {
            data_dir: dir.path().join("data"),
            flush_policy: FlushPolicy::Os,
            ..BrokerConfig::default()
        };
        // Current-thread: the handler runs on the test's thread, where the allocator watches.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let broker = runtime.block_on(Broker::open(config)).unwrap();
        let fixture = Fixture {
            _dir: dir,
            broker,
            runtime,
        };
        // A topic for produce/fetch/list-offsets frames to land on.
        run(&fixture, &request(ApiKey::Metadata, 9, &metadata_request()));
        fixture
    })
}

fn run(fixture: &Fixture, frame: &[u8]) -> (Outcome, usize) {
    LARGEST.with(|l| l.set(0));
    WATCH.with(|w| w.set(true));
    let outcome = fixture.runtime.block_on(async {
        // Bounded wait: a fetch may long-poll up to its max_wait_ms.
        tokio::time::timeout(std::time::Duration::from_millis(200), async {
            match handle_untrusted_frame(
                fixture.broker.clone(),
                Arc::new(Session::anonymous(None)),
                Bytes::copy_from_slice(frame),
            ) {
                Ok(handler) => handler.await,
                Err(reason) => Outcome::Close(reason),
            }
        })
        .await
        .unwrap_or(Outcome::NoResponse)
    });
    WATCH.with(|w| w.set(false));
    (outcome, LARGEST.with(|l| l.get()))
}

fn check(frame: &[u8]) -> Result<(), TestCaseError> {
    let (outcome, largest) = run(fixture(), frame);
    if let Outcome::Close(reason) = outcome {
        prop_assert_ne!(reason, "handler panicked", "frame {:02x?}", frame);
    }
    prop_assert!(
        largest <= ALLOCATION_LIMIT,
        "a {} byte frame caused a {} byte allocation: {:02x?}",
        frame.len(),
        largest,
        &frame[..frame.len().min(64)]
    );
    Ok(())
}

fn request<T: Encodable>(key: ApiKey, version: i16, body: &T) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(StrBytes::from_static_str("fuzz")));
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

fn metadata_request() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(name("fuzz")))
        ]))
        .with_allow_auto_topic_creation(true)
}

/// Valid requests of several kinds and versions, the seeds of the mutation strategy.
fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = Vec::new();
    for v in [0, 1, 4, 9, 12] {
        seeds.push(request(ApiKey::Metadata, v, &metadata_request()));
    }
    for v in [3, 8, 9, 11] {
        let produce = ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(name("fuzz"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from_static(&[0u8; 61])))])]);
        seeds.push(request(ApiKey::Produce, v, &produce));
    }
    for v in [4, 11, 12] {
        let fetch = FetchRequest::default()
            .with_max_wait_ms(0)
            .with_topics(vec![FetchTopic::default()
                .with_topic(name("fuzz"))
                .with_partitions(vec![
                    FetchPartition::default().with_partition_max_bytes(1024)
                ])]);
        seeds.push(request(ApiKey::Fetch, v, &fetch));
    }
    for v in [2, 5] {
        let create = CreateTopicsRequest::default()
            .with_validate_only(true)
            .with_topics(vec![CreatableTopic::default()
                .with_name(name("fuzz-created"))
                .with_num_partitions(1)
                .with_replication_factor(1)
                .with_configs(vec![CreatableTopicConfig::default()
                    .with_name(StrBytes::from_static_str("retention.ms"))
                    .with_value(Some(StrBytes::from_static_str("1000")))])]);
        seeds.push(request(ApiKey::CreateTopics, v, &create));
    }
    seeds.push(request(
        ApiKey::ApiVersions,
        3,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("f"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    ));
    seeds
}

/// A header for a supported key and version, then arbitrary bytes.
fn header_then_noise() -> impl Strategy<Value = Vec<u8>> {
    let keys: Vec<(i16, i16, i16)> = ApiKey::iter()
        .filter_map(|k| supported_versions(k).map(|(min, max)| (k as i16, min, max)))
        .collect();
    (
        proptest::sample::select(keys),
        any::<u16>(),
        proptest::collection::vec(any::<u8>(), 0..256),
        any::<bool>(),
    )
        .prop_map(|((key, min, max), pick, noise, flexible_header)| {
            let version = min + (pick % (max - min + 1) as u16) as i16;
            let mut frame = BytesMut::new();
            frame.put_i16(key);
            frame.put_i16(version);
            frame.put_i32(99);
            frame.put_i16(-1);
            if flexible_header {
                frame.put_u8(0);
            }
            frame.put_slice(&noise);
            frame.to_vec()
        })
}

/// A valid request with a few bytes overwritten, often by huge lengths.
fn mutated_seed() -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds();
    (
        proptest::sample::select(seeds),
        proptest::collection::vec(
            (
                any::<prop::sample::Index>(),
                prop_oneof![
                    Just(vec![0x7f, 0xff, 0xff, 0xff]),
                    Just(vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
                    Just(vec![0x10, 0x00, 0x00, 0x00]),
                    Just(vec![0xff, 0xff]),
                    proptest::collection::vec(any::<u8>(), 1..4),
                ],
            ),
            1..4,
        ),
        any::<prop::sample::Index>(),
    )
        .prop_map(|(mut frame, patches, cut)| {
            for (at, bytes) in patches {
                // Keep the api key and version; patch anywhere after them.
                let start = 4 + at.index(frame.len() - 4);
                for (i, b) in bytes.into_iter().enumerate() {
                    if let Some(slot) = frame.get_mut(start + i) {
                        *slot = b;
                    }
                }
            }
            // Sometimes truncate as well.
            let keep = 8 + cut.index(frame.len() - 7);
            frame.truncate(keep.max(8));
            frame
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic_or_allocate_hugely(frame in proptest::collection::vec(any::<u8>(), 0..300)) {
        check(&frame)?;
    }

    #[test]
    fn noise_behind_valid_headers_never_panics_or_allocates_hugely(frame in header_then_noise()) {
        check(&frame)?;
    }

    #[test]
    fn mutated_requests_never_panic_or_allocate_hugely(frame in mutated_seed()) {
        check(&frame)?;
    }
}

#[test]
fn seeds_are_answered() {
    for seed in seeds() {
        let (outcome, _) = run(fixture(), &seed);
        assert!(
            matches!(outcome, Outcome::Respond(_)),
            "seed not answered: {seed:02x?}"
        );
    }
}

#[test]
fn the_known_killer_is_refused_without_a_big_allocation() {
    // Metadata v1 with a topics array of 2^31-1 and nothing behind it.
    let mut frame = vec![0, 3, 0, 1, 0, 0, 0, 7, 0xff, 0xff];
    frame.extend_from_slice(&i32::MAX.to_be_bytes());
    let (outcome, largest) = run(fixture(), &frame);
    assert!(matches!(outcome, Outcome::Close(_)));
    assert!(largest <= ALLOCATION_LIMIT, "{largest}");
}
