//! ACLs (KIP-140) through librdkafka's admin API: CreateAcls / DescribeAcls / DeleteAcls, their
//! enforcement (a DENY WRITE for User:ANONYMOUS makes a produce fail with
//! TOPIC_AUTHORIZATION_FAILED while another topic keeps working) and their persistence across a
//! broker restart.
//!
//! The rdkafka crate does not wrap the ACL admin calls, so `acl_ffi` drives librdkafka's C API
//! on the AdminClient's own handle.
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::time::Duration;

use chronik_integration::Broker;
use core_util::{admin, create_topic, producer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureRecord;

/// A binding as librdkafka reports it: (resource type, name, pattern type, principal, host,
/// operation, permission), as the Kafka wire codes.
type Binding = (u32, String, u32, String, String, u32, u32);

const TOPIC: u32 = 2;
const MATCH: u32 = 2;
const LITERAL: u32 = 3;
const PREFIXED: u32 = 4;
const ANY: u32 = 1;
const READ: u32 = 3;
const WRITE: u32 = 4;
const DENY: u32 = 2;
const ALLOW: u32 = 3;
const INVALID_REQUEST: i32 = 42;

mod acl_ffi {
    use std::ffi::{CStr, CString};
    use std::ptr;

    use rdkafka::bindings as rd;

    use super::Binding;

    type Handle = *mut rd::rd_kafka_t;

    fn cstr(s: &str) -> CString {
        CString::new(s).unwrap()
    }

    fn opt_ptr(s: &Option<CString>) -> *const CChar {
        s.as_ref().map_or(ptr::null(), |c| c.as_ptr())
    }
    type CChar = std::os::raw::c_char;

    // The enums are repr(u32) with the wire codes as discriminants.
    unsafe fn restype(v: u32) -> rd::rd_kafka_ResourceType_t {
        std::mem::transmute(v)
    }
    unsafe fn pattern(v: u32) -> rd::rd_kafka_ResourcePatternType_t {
        std::mem::transmute(v)
    }
    unsafe fn operation(v: u32) -> rd::rd_kafka_AclOperation_t {
        std::mem::transmute(v)
    }
    unsafe fn permission(v: u32) -> rd::rd_kafka_AclPermissionType_t {
        std::mem::transmute(v)
    }

    /// Runs one admin call on a fresh queue and returns its result event (caller destroys it).
    unsafe fn call(
        rk: Handle,
        f: impl FnOnce(*mut rd::rd_kafka_queue_t),
    ) -> *mut rd::rd_kafka_event_t {
        let q = rd::rd_kafka_queue_new(rk);
        f(q);
        let ev = rd::rd_kafka_queue_poll(q, 15_000);
        rd::rd_kafka_queue_destroy(q);
        assert!(!ev.is_null(), "no admin result within 15 s");
        let err = rd::rd_kafka_event_error(ev);
        if err as i32 != 0 {
            let msg = CStr::from_ptr(rd::rd_kafka_event_error_string(ev));
            panic!("admin call failed: {err:?}: {msg:?}");
        }
        ev
    }

    unsafe fn binding_of(acl: *const rd::rd_kafka_AclBinding_t) -> Binding {
        let s = |p: *const CChar| CStr::from_ptr(p).to_string_lossy().into_owned();
        (
            rd::rd_kafka_AclBinding_restype(acl) as u32,
            s(rd::rd_kafka_AclBinding_name(acl)),
            rd::rd_kafka_AclBinding_resource_pattern_type(acl) as u32,
            s(rd::rd_kafka_AclBinding_principal(acl)),
            s(rd::rd_kafka_AclBinding_host(acl)),
            rd::rd_kafka_AclBinding_operation(acl) as u32,
            rd::rd_kafka_AclBinding_permission_type(acl) as u32,
        )
    }

    /// CreateAcls; per binding, 0 or the broker's error code.
    pub fn create(rk: Handle, bindings: &[Binding]) -> Vec<i32> {
        unsafe {
            let mut errstr = [0 as CChar; 256];
            let mut new: Vec<*mut rd::rd_kafka_AclBinding_t> = bindings
                .iter()
                .map(|(rt, name, pt, principal, host, op, perm)| {
                    let b = rd::rd_kafka_AclBinding_new(
                        restype(*rt),
                        cstr(name).as_ptr(),
                        pattern(*pt),
                        cstr(principal).as_ptr(),
                        cstr(host).as_ptr(),
                        operation(*op),
                        permission(*perm),
                        errstr.as_mut_ptr(),
                        errstr.len(),
                    );
                    assert!(!b.is_null(), "{:?}", CStr::from_ptr(errstr.as_ptr()));
                    b
                })
                .collect();
            let ev = call(rk, |q| {
                rd::rd_kafka_CreateAcls(rk, new.as_mut_ptr(), new.len(), ptr::null(), q)
            });
            let res = rd::rd_kafka_event_CreateAcls_result(ev);
            let mut n = 0;
            let results = rd::rd_kafka_CreateAcls_result_acls(res, &mut n);
            let codes = (0..n)
                .map(|i| {
                    let e = rd::rd_kafka_acl_result_error(*results.add(i));
                    if e.is_null() {
                        0
                    } else {
                        rd::rd_kafka_error_code(e) as i32
                    }
                })
                .collect();
            rd::rd_kafka_event_destroy(ev);
            rd::rd_kafka_AclBinding_destroy_array(new.as_mut_ptr(), new.len());
            codes
        }
    }

    /// A filter: (resource type, name, pattern type, principal, host, operation, permission).
    pub type Filter = (
        u32,
        Option<String>,
        u32,
        Option<String>,
        Option<String>,
        u32,
        u32,
    );

    unsafe fn filter(f: &Filter) -> *mut rd::rd_kafka_AclBindingFilter_t {
        let (rt, name, pt, principal, host, op, perm) = f;
        let (name, principal, host) = (
            name.as_deref().map(cstr),
            principal.as_deref().map(cstr),
            host.as_deref().map(cstr),
        );
        let mut errstr = [0 as CChar; 256];
        let filter = rd::rd_kafka_AclBindingFilter_new(
            restype(*rt),
            opt_ptr(&name),
            pattern(*pt),
            opt_ptr(&principal),
            opt_ptr(&host),
            operation(*op),
            permission(*perm),
            errstr.as_mut_ptr(),
            errstr.len(),
        );
        assert!(!filter.is_null(), "{:?}", CStr::from_ptr(errstr.as_ptr()));
        filter
    }

    pub fn describe(rk: Handle, f: &Filter) -> Vec<Binding> {
        unsafe {
            let filter = filter(f);
            let ev = call(rk, |q| {
                rd::rd_kafka_DescribeAcls(rk, filter, ptr::null(), q)
            });
            let res = rd::rd_kafka_event_DescribeAcls_result(ev);
            let mut n = 0;
            let acls = rd::rd_kafka_DescribeAcls_result_acls(res, &mut n);
            let mut out: Vec<Binding> = (0..n).map(|i| binding_of(*acls.add(i))).collect();
            out.sort();
            rd::rd_kafka_event_destroy(ev);
            rd::rd_kafka_AclBinding_destroy(filter);
            out
        }
    }

    /// DeleteAcls with one filter: the bindings it removed.
    pub fn delete(rk: Handle, f: &Filter) -> Vec<Binding> {
        unsafe {
            let mut filters = [filter(f)];
            let ev = call(rk, |q| {
                rd::rd_kafka_DeleteAcls(rk, filters.as_mut_ptr(), 1, ptr::null(), q)
            });
            let res = rd::rd_kafka_event_DeleteAcls_result(ev);
            let mut n = 0;
            let responses = rd::rd_kafka_DeleteAcls_result_responses(res, &mut n);
            assert_eq!(n, 1);
            let response = *responses;
            assert!(rd::rd_kafka_DeleteAcls_result_response_error(response).is_null());
            let mut m = 0;
            let acls = rd::rd_kafka_DeleteAcls_result_response_matching_acls(response, &mut m);
            let mut out: Vec<Binding> = (0..m).map(|i| binding_of(*acls.add(i))).collect();
            out.sort();
            rd::rd_kafka_event_destroy(ev);
            rd::rd_kafka_AclBinding_destroy(filters[0]);
            out
        }
    }
}

fn binding(name: &str, pt: u32, principal: &str, op: u32, perm: u32) -> Binding {
    (
        TOPIC,
        name.into(),
        pt,
        principal.into(),
        "*".into(),
        op,
        perm,
    )
}

fn all() -> acl_ffi::Filter {
    (ANY, None, ANY, None, None, ANY, ANY)
}

/// Produces one record; Ok(offset) or the delivery error code.
async fn produce_one(bootstrap: &str, topic: &str) -> Result<i64, RDKafkaErrorCode> {
    let producer = producer(bootstrap, &[("message.timeout.ms", "10000")]);
    let record = FutureRecord::<[u8], [u8]>::to(topic).payload(b"v".as_slice());
    match producer.send(record, Duration::from_secs(10)).await {
        Ok(delivery) => Ok(delivery.offset),
        Err((KafkaError::MessageProduction(code), _)) => Err(code),
        Err((e, _)) => panic!("unexpected produce error {e:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_are_created_described_enforced_persisted_and_deleted() {
    let mut broker = Broker::start();
    let bootstrap = broker.bootstrap();
    create_topic(&bootstrap, "denied", 1, &[]).await;
    create_topic(&bootstrap, "open", 1, &[]).await;
    let admin = admin(&bootstrap);
    let rk = admin.inner().native_ptr();

    let deny_write = binding("denied", LITERAL, "User:ANONYMOUS", WRITE, DENY);
    let allow_read = binding("den", PREFIXED, "User:alice", READ, ALLOW);
    assert_eq!(
        acl_ffi::create(rk, &[deny_write.clone(), allow_read.clone()]),
        [0, 0]
    );
    // A principal without a type is refused with INVALID_REQUEST; the valid one is created.
    assert_eq!(
        acl_ffi::create(
            rk,
            &[
                binding("x", LITERAL, "alice", READ, ALLOW),
                binding("x", LITERAL, "User:bob", READ, ALLOW)
            ]
        ),
        [INVALID_REQUEST, 0]
    );
    let mut expected = vec![
        deny_write.clone(),
        allow_read.clone(),
        binding("x", LITERAL, "User:bob", READ, ALLOW),
    ];
    expected.sort();
    assert_eq!(acl_ffi::describe(rk, &all()), expected);
    // MATCH: the bindings that apply to topic "denied" (literal and prefixed).
    let on_denied: acl_ffi::Filter = (TOPIC, Some("denied".into()), MATCH, None, None, ANY, ANY);
    let mut applying = vec![deny_write.clone(), allow_read.clone()];
    applying.sort();
    assert_eq!(acl_ffi::describe(rk, &on_denied), applying);

    // Enforcement: the denied topic refuses, the other still works.
    assert_eq!(
        produce_one(&bootstrap, "denied").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );
    assert!(produce_one(&bootstrap, "open").await.is_ok());

    // The ACLs survive a restart.
    drop(admin);
    broker.restart();
    let admin = core_util::admin(&bootstrap);
    let rk = admin.inner().native_ptr();
    assert_eq!(acl_ffi::describe(rk, &all()), expected);
    assert_eq!(
        produce_one(&bootstrap, "denied").await,
        Err(RDKafkaErrorCode::TopicAuthorizationFailed)
    );

    // Deleting by MATCH removes both bindings that applied, and produce works again.
    assert_eq!(acl_ffi::delete(rk, &on_denied), applying);
    assert_eq!(
        acl_ffi::describe(rk, &all()),
        vec![binding("x", LITERAL, "User:bob", READ, ALLOW)]
    );
    assert!(produce_one(&bootstrap, "denied").await.is_ok());
    assert_eq!(acl_ffi::delete(rk, &all()).len(), 1);
    assert!(acl_ffi::describe(rk, &all()).is_empty());
}
