//! Security end to end (issue 12): named listeners, SASL PLAIN with librdkafka (rdkafka, built
//! without OpenSSL, so PLAIN only) and PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512 with Debian's kcat
//! on SASL_PLAINTEXT, SASL_SSL and SSL, users
//! created before the start and through AlterUserScramCredentials, failures that do not tell an
//! unknown user from a wrong password, ACLs on authenticated principals, super users, mTLS
//! principals, TLS certificates reloaded without a restart, and plaintext / TLS sent to the
//! wrong port refused without hurting other clients.
//!
//! Certificates are made here with rcgen. The kcat tests are skipped when kcat is not
//! installed (`apt-get install kcat`).
//!
//! Needs `target/debug/chronik-server` (`cargo build -p chronik-server`).

mod core_util;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chronik_integration::raw::{exchange_on, read_frame, request_frame};
use chronik_integration::{free_port, server_bin, Broker};
use kafka_protocol::messages::alter_user_scram_credentials_request::{
    ScramCredentialDeletion, ScramCredentialUpsertion,
};
use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey, CreateAclsRequest,
    CreateAclsResponse, MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};

const T: Duration = Duration::from_secs(15);
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A broker with a PLAINTEXT listener (the harness's port) and the given others, each on a
/// fresh port, configured by a TOML file; users added with `users add` before the start.
struct Secured {
    broker: Broker,
    ports: Vec<(String, u16)>,
    dir: tempfile::TempDir,
}

impl Secured {
    fn start(listeners: &[&str], toml: &str, users: &[(&str, &str, &str)]) -> Secured {
        Secured::start_in(tempfile::tempdir().unwrap(), listeners, toml, users)
    }

    /// With the config and test files in `dir`.
    fn start_in(
        dir: tempfile::TempDir,
        listeners: &[&str],
        toml: &str,
        users: &[(&str, &str, &str)],
    ) -> Secured {
        let config = dir.path().join("chronik.toml");
        let mut broker = Broker::prepare(&["--config", config.to_str().unwrap()]);
        let ports: Vec<(String, u16)> = listeners
            .iter()
            .map(|name| (name.to_string(), free_port()))
            .collect();
        let mut list = format!("PLAINTEXT://127.0.0.1:{}", broker.port());
        for (name, port) in &ports {
            list.push_str(&format!(",{name}://127.0.0.1:{port}"));
        }
        std::fs::write(
            &config,
            format!("listeners = \"{list}\"\ninter_broker_listener_name = \"PLAINTEXT\"\n{toml}\n"),
        )
        .unwrap();
        let password_file = dir.path().join("pw");
        for (user, mechanism, password) in users {
            std::fs::write(&password_file, password).unwrap();
            let added = Command::new(server_bin())
                .args(["users", "add", user, "--mechanism", mechanism])
                .arg("--password-file")
                .arg(&password_file)
                .arg("--data-dir")
                .arg(broker.storage_dir())
                .output()
                .expect("running users add");
            assert!(added.status.success(), "{added:?}");
        }
        broker.restart();
        Secured { broker, ports, dir }
    }

    fn addr(&self, listener: &str) -> String {
        let port = self.ports.iter().find(|(n, _)| n == listener).unwrap().1;
        format!("127.0.0.1:{port}")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn sasl_config(bootstrap: &str, mechanism: &str, user: &str, password: &str) -> ClientConfig {
    core_util::config(
        bootstrap,
        &[
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", mechanism),
            ("sasl.username", user),
            ("sasl.password", password),
            ("message.timeout.ms", "15000"),
        ],
    )
}

async fn produce(config: &ClientConfig, topic: &str, value: &str) -> Result<(), KafkaError> {
    let producer: FutureProducer = config.create().unwrap();
    producer
        .send(FutureRecord::<str, str>::to(topic).payload(value), T)
        .await
        .map(|_| ())
        .map_err(|(e, _)| e)
}

fn consume_one(config: &ClientConfig, topic: &str) -> String {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "security-tests")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .unwrap();
    consumer.assign(&tpl).unwrap();
    let deadline = Instant::now() + T;
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => return String::from_utf8_lossy(m.payload().unwrap()).to_string(),
            Some(Err(e)) => panic!("consume from {topic}: {e}"),
            None => {}
        }
    }
    panic!("nothing consumed from {topic}");
}

/// Whether a client with this config gets metadata (authentication succeeds).
fn connects(config: &ClientConfig) -> bool {
    let producer: BaseProducer = config.create().unwrap();
    producer
        .client()
        .fetch_metadata(None, Duration::from_secs(5))
        .is_ok()
}

/// SaslHandshake v1 + SaslAuthenticate v2 with PLAIN on a raw connection.
fn raw_plain(addr: &str, user: &str, password: &str) -> (TcpStream, SaslAuthenticateResponse) {
    let mut stream = TcpStream::connect(addr).unwrap();
    let handshake: SaslHandshakeResponse = exchange_on(
        &mut stream,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .unwrap();
    assert_eq!(handshake.error_code, 0);
    let token = format!("\0{user}\0{password}");
    let response = exchange_on(
        &mut stream,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    )
    .unwrap();
    (stream, response)
}

/// The server closed the connection: EOF or a reset within 10 s.
fn assert_closed(stream: &mut TcpStream, what: &str) {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut buf = [0u8; 256];
    match stream.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("{what}: {n} bytes instead of a closed connection"),
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            panic!("{what}: still open after 10 s")
        }
        Err(_) => {}
    }
}

#[tokio::test]
async fn scram_and_plain_round_trips_over_sasl_plaintext() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "",
        &[
            ("alice", "SCRAM-SHA-256", "alice-secret"),
            ("alice", "SCRAM-SHA-512", "alice-secret"),
        ],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let config = sasl_config(&addr, "PLAIN", "alice", "alice-secret");
    produce(&config, "sasl-plain", "PLAIN")
        .await
        .unwrap_or_else(|e| panic!("PLAIN: {e}; log:\n{}", s.broker.log()));
    assert_eq!(consume_one(&config, "sasl-plain"), "PLAIN");
    if kcat_installed() {
        for mechanism in ["SCRAM-SHA-256", "SCRAM-SHA-512"] {
            let settings = kcat_sasl("SASL_PLAINTEXT", mechanism, "alice", "alice-secret");
            kcat_round_trip(
                &settings,
                &addr,
                &format!("sasl-{}", mechanism.to_lowercase()),
            );
        }
    }
    // Metadata names this broker at the SASL listener for its clients, at PLAINTEXT for others.
    let producer: BaseProducer = sasl_config(&addr, "PLAIN", "alice", "alice-secret")
        .create()
        .unwrap();
    let metadata = producer.client().fetch_metadata(None, T).unwrap();
    assert_eq!(
        metadata.brokers()[0].port() as u16,
        s.addr("SASL_PLAINTEXT")[10..].parse::<u16>().unwrap()
    );
    let plain: BaseProducer = core_util::config(&s.broker.bootstrap(), &[])
        .create()
        .unwrap();
    let metadata = plain.client().fetch_metadata(None, T).unwrap();
    assert_eq!(metadata.brokers()[0].port() as u16, s.broker.port());
    // Connections are counted per listener.
    let (_, metrics) = s.broker.http_get("/metrics").unwrap();
    for listener in ["PLAINTEXT", "SASL_PLAINTEXT"] {
        assert!(
            metrics.contains(&format!(
                "connection_creation_total{{listener=\"{listener}\"}}"
            )),
            "{listener} in:\n{metrics}"
        );
    }
}

#[test]
fn failed_authentications_do_not_say_whether_the_user_exists() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "connection_failed_authentication_delay_ms = 300",
        &[("alice", "SCRAM-SHA-256", "alice-secret")],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let (_ok, response) = raw_plain(&addr, "alice", "alice-secret");
    assert_eq!(response.error_code, 0);

    let mut answers = Vec::new();
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        let started = Instant::now();
        let (mut stream, response) = raw_plain(&addr, user, password);
        assert_eq!(response.error_code, SASL_AUTHENTICATION_FAILED);
        answers.push(response.error_message.map(|m| m.to_string()));
        assert_closed(&mut stream, "after a failed authentication");
        assert!(
            started.elapsed() >= Duration::from_millis(300),
            "closed after the delay"
        );
    }
    assert_eq!(answers[0], answers[1], "the same answer for both");
    assert!(!answers[0].as_ref().unwrap().contains("alice"));

    // Through real clients: neither gets in.
    for (user, password) in [("alice", "wrong"), ("mallory", "alice-secret")] {
        assert!(
            !connects(&sasl_config(&addr, "PLAIN", user, password)),
            "{user}"
        );
        if kcat_installed() {
            let settings = kcat_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", user, password);
            let (ok, out) = kcat(&settings, &["-b", &addr, "-L"], "");
            assert!(!ok, "{user} over SCRAM: {out}");
        }
    }

    // Before authentication only ApiVersions and the SASL APIs are read.
    let mut stream = TcpStream::connect(&addr).unwrap();
    stream
        .write_all(&request_frame(
            ApiKey::Metadata,
            12,
            1,
            &MetadataRequest::default(),
        ))
        .unwrap();
    assert_closed(&mut stream, "a request before authentication");
    // An unknown mechanism is refused with the list of enabled ones.
    let mut stream = TcpStream::connect(&addr).unwrap();
    let handshake: SaslHandshakeResponse = exchange_on(
        &mut stream,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("GSSAPI")),
    )
    .unwrap();
    assert_eq!(handshake.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    assert_eq!(handshake.mechanisms.len(), 3);
    assert_closed(&mut stream, "after an unsupported mechanism");
    // A PLAINTEXT listener answers the SASL APIs with ILLEGAL_SASL_STATE.
    let mut plain = TcpStream::connect(s.broker.bootstrap()).unwrap();
    let handshake: SaslHandshakeResponse = exchange_on(
        &mut plain,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .unwrap();
    assert_eq!(handshake.error_code, 34, "ILLEGAL_SASL_STATE");
    // The log holds no password.
    assert!(!s.broker.log().contains("alice-secret"));
}

/// Sends AlterUserScramCredentials over `stream`; every alteration must succeed.
fn alter_users(stream: &mut TcpStream, request: AlterUserScramCredentialsRequest) {
    let altered: AlterUserScramCredentialsResponse =
        exchange_on(stream, ApiKey::AlterUserScramCredentials, 0, &request).unwrap();
    assert!(
        !altered.results.is_empty() && altered.results.iter().all(|r| r.error_code == 0),
        "{altered:?}"
    );
}

/// Creates SCRAM user `user` through the first broker of `bootstrap` (a PLAINTEXT listener).
fn add_user_through_first_broker(bootstrap: &str, user: &str, password: &str) {
    let mut admin = TcpStream::connect(bootstrap.split(',').next().unwrap()).unwrap();
    alter_users(
        &mut admin,
        AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsertion(user, password)]),
    );
}

/// A SCRAM-SHA-256 upsertion as a client computes it (the password never leaves it).
fn upsertion(user: &str, password: &str) -> ScramCredentialUpsertion {
    let salt: [u8; 16] = *b"0123456789abcdef";
    let salted = pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), &salt, 4096);
    ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(user.into()))
        .with_mechanism(1)
        .with_iterations(4096)
        .with_salt(Bytes::copy_from_slice(&salt))
        .with_salted_password(Bytes::copy_from_slice(&salted))
}

#[tokio::test]
async fn users_altered_through_the_api_take_effect_at_once() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "",
        &[("admin", "SCRAM-SHA-512", "admin-secret")],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let (mut admin, response) = raw_plain(&addr, "admin", "admin-secret");
    assert_eq!(response.error_code, 0);
    alter_users(
        &mut admin,
        AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsertion("carol", "carol-secret")]),
    );
    let carol = sasl_config(&addr, "PLAIN", "carol", "carol-secret");
    produce(&carol, "carols", "hello").await.unwrap();
    if kcat_installed() {
        let settings = kcat_sasl("SASL_PLAINTEXT", "SCRAM-SHA-256", "carol", "carol-secret");
        kcat_round_trip(&settings, &addr, "carols-scram");
    }

    let deletion = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_static_str("carol"))
        .with_mechanism(1);
    alter_users(
        &mut admin,
        AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]),
    );
    assert!(!connects(&carol), "a deleted user cannot connect");
}

/// ALLOW `principal` every operation on topic `topic`, created over `stream`.
fn allow_all_on_topic(stream: &mut TcpStream, principal: &str, topic: &str) {
    let creation = AclCreation::default()
        .with_resource_type(2)
        .with_resource_name(StrBytes::from_string(topic.into()))
        .with_resource_pattern_type(3)
        .with_principal(StrBytes::from_string(principal.into()))
        .with_host(StrBytes::from_static_str("*"))
        .with_operation(2)
        .with_permission_type(3);
    let created: CreateAclsResponse = exchange_on(
        stream,
        ApiKey::CreateAcls,
        3,
        &CreateAclsRequest::default().with_creations(vec![creation]),
    )
    .unwrap();
    assert_eq!(created.results[0].error_code, 0, "{created:?}");
}

#[tokio::test]
async fn acls_act_on_the_authenticated_principal_and_super_users_bypass_them() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "allow_everyone_if_no_acl_found = false\nsuper_users = \"User:admin;User:ops\"",
        &[
            ("admin", "SCRAM-SHA-256", "admin-secret"),
            ("alice", "SCRAM-SHA-256", "alice-secret"),
            ("bob", "SCRAM-SHA-256", "bob-secret"),
        ],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let (mut admin, response) = raw_plain(&addr, "admin", "admin-secret");
    assert_eq!(response.error_code, 0);
    allow_all_on_topic(&mut admin, "User:alice", "guarded");
    let admin_config = sasl_config(&addr, "PLAIN", "admin", "admin-secret");
    produce(&admin_config, "guarded", "from admin")
        .await
        .unwrap();

    let alice = sasl_config(&addr, "PLAIN", "alice", "alice-secret");
    produce(&alice, "guarded", "from alice").await.unwrap();
    let bob = sasl_config(&addr, "PLAIN", "bob", "bob-secret");
    match produce(&bob, "guarded", "from bob").await {
        Err(KafkaError::MessageProduction(RDKafkaErrorCode::TopicAuthorizationFailed)) => {}
        other => panic!("bob's produce: {other:?}"),
    }
    // Anonymous PLAINTEXT clients are not super users either.
    let anonymous = core_util::config(&s.broker.bootstrap(), &[("message.timeout.ms", "15000")]);
    assert!(produce(&anonymous, "guarded", "anonymous").await.is_err());
}

// --- TLS ---------------------------------------------------------------------------------

struct Ca {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn ca(name: &str) -> Ca {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Ca { cert, key }
}

/// A certificate signed by `ca`, as (certificate PEM, PKCS#8 key PEM).
fn leaf(ca: &Ca, names: &[&str], cn: &str, client: bool) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .unwrap();
    if !client {
        params
            .subject_alt_names
            .push(rcgen::SanType::IpAddress("127.0.0.1".parse().unwrap()));
    }
    // Pushed outermost first: the subject prints as CN=...,O=chronik-test.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "chronik-test");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = vec![if client {
        rcgen::ExtendedKeyUsagePurpose::ClientAuth
    } else {
        rcgen::ExtendedKeyUsagePurpose::ServerAuth
    }];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap();
}

fn kcat_installed() -> bool {
    Command::new("kcat").arg("-V").output().is_ok()
}

/// kcat with these `-X` settings and arguments, `input` on stdin: (success, stdout + stderr).
fn kcat(settings: &[(&str, String)], args: &[&str], input: &str) -> (bool, String) {
    let mut command = Command::new("kcat");
    // cargo points LD_LIBRARY_PATH at the test build, whose librdkafka has no OpenSSL.
    command.env_remove("LD_LIBRARY_PATH");
    for (k, v) in settings {
        command.arg("-X").arg(format!("{k}={v}"));
    }
    let mut child = command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// A broker with SASL_SSL and SSL listeners (client certificates requested, verified against
/// the test CA, principal = the CN), and the CA.
fn tls_broker(users: &[(&str, &str, &str)]) -> (Secured, Ca) {
    tls_broker_with(users, "requested")
}

fn tls_broker_with(users: &[(&str, &str, &str)], client_auth: &str) -> (Secured, Ca) {
    let ca = ca("chronik test CA");
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = leaf(&ca, &["localhost"], "broker", false);
    let paths = ["server.pem", "server.key", "ca.pem"].map(|n| dir.path().join(n));
    write(&paths[0], &cert);
    write(&paths[1], &key);
    write(&paths[2], &ca.cert.pem());
    let toml = format!(
        "ssl_certificate_file = {:?}\nssl_key_file = {:?}\nssl_ca_file = {:?}\n\
         ssl_client_auth = {client_auth:?}\n\
         ssl_principal_mapping_rules = \"RULE:^CN=(.*?),.*$/$1/,DEFAULT\"",
        paths[0], paths[1], paths[2]
    );
    (
        Secured::start_in(dir, &["SASL_SSL", "SSL"], &toml, users),
        ca,
    )
}

/// kcat settings for SASL over `protocol` (SASL_PLAINTEXT or SASL_SSL).
fn kcat_sasl(
    protocol: &str,
    mechanism: &str,
    user: &str,
    password: &str,
) -> Vec<(&'static str, String)> {
    vec![
        ("security.protocol", protocol.to_string()),
        ("sasl.mechanisms", mechanism.to_string()),
        ("sasl.username", user.to_string()),
        ("sasl.password", password.to_string()),
    ]
}

/// Produces one message with kcat and reads it back.
fn kcat_round_trip(settings: &[(&str, String)], addr: &str, topic: &str) {
    let (ok, out) = kcat(settings, &["-b", addr, "-P", "-t", topic], "round trip\n");
    assert!(ok, "{topic} produce: {out}");
    let consume = [
        "-b",
        addr,
        "-C",
        "-t",
        topic,
        "-o",
        "beginning",
        "-c",
        "1",
        "-e",
    ];
    let (ok, out) = kcat(settings, &consume, "");
    assert!(ok && out.contains("round trip"), "{topic} consume: {out}");
}

fn client_files(s: &Secured, ca: &Ca, cn: &str) -> Vec<(&'static str, String)> {
    let (cert, key) = leaf(ca, &[], cn, true);
    let (cert_path, key_path) = (s.path(&format!("{cn}.pem")), s.path(&format!("{cn}.key")));
    write(&cert_path, &cert);
    write(&key_path, &key);
    vec![
        ("ssl.certificate.location", cert_path.display().to_string()),
        ("ssl.key.location", key_path.display().to_string()),
    ]
}

#[test]
fn kcat_over_sasl_ssl_and_mtls_principals() {
    if !kcat_installed() {
        eprintln!("kcat is not installed: skipped");
        return;
    }
    let (s, ca) = tls_broker(&[("alice", "SCRAM-SHA-512", "alice-secret")]);
    let ca_location = s.path("ca.pem").display().to_string();
    let sasl_ssl = |mechanism: &str, password: &str| {
        let mut settings = kcat_sasl("SASL_SSL", mechanism, "alice", password);
        settings.push(("ssl.ca.location", ca_location.clone()));
        settings
    };
    let addr = s.addr("SASL_SSL");
    for mechanism in ["SCRAM-SHA-512", "PLAIN"] {
        let topic = format!("kcat-{}", mechanism.to_lowercase());
        kcat_round_trip(&sasl_ssl(mechanism, "alice-secret"), &addr, &topic);
    }
    let (ok, _) = kcat(
        &sasl_ssl("SCRAM-SHA-512", "wrong"),
        &["-b", &addr, "-L"],
        "",
    );
    assert!(!ok, "a wrong password over SASL_SSL");

    // mTLS on the SSL listener: ACLs on the topic let User:alice in and keep User:bob out.
    let mut plaintext = TcpStream::connect(s.broker.bootstrap()).unwrap();
    allow_all_on_topic(&mut plaintext, "User:alice", "mtls");
    let ssl = |cn: &str| {
        let mut settings = vec![
            ("security.protocol", "SSL".to_string()),
            ("ssl.ca.location", ca_location.clone()),
        ];
        settings.extend(client_files(&s, &ca, cn));
        settings
    };
    let ssl_addr = s.addr("SSL");
    let produce = ["-b", &ssl_addr, "-P", "-t", "mtls"];
    let (ok, out) = kcat(&ssl("alice"), &produce, "from alice\n");
    assert!(ok, "alice over mTLS: {out}; log:\n{}", s.broker.log());
    let (ok, out) = kcat(&ssl("bob"), &produce, "from bob\n");
    assert!(!ok || out.contains("authoriz"), "bob over mTLS: {out}");
    let (ok, out) = kcat(
        &ssl("bob"),
        &[
            "-b",
            &ssl_addr,
            "-C",
            "-t",
            "mtls",
            "-o",
            "beginning",
            "-c",
            "1",
            "-e",
        ],
        "",
    );
    assert!(!ok || !out.contains("from alice"), "bob reads: {out}");
}

#[test]
fn plaintext_to_a_tls_port_and_tls_to_a_plaintext_port_are_refused() {
    let (s, _ca) = tls_broker(&[]);
    // A Kafka request to the SSL port: not a ClientHello, so the handshake fails and closes.
    // At most a TLS alert comes back (content type 21), then the end of the stream.
    let mut stream = TcpStream::connect(s.addr("SSL")).unwrap();
    stream
        .write_all(&request_frame(
            ApiKey::Metadata,
            12,
            1,
            &MetadataRequest::default(),
        ))
        .unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(
        answer.is_empty() || answer[0] == 21,
        "plaintext to the TLS port: {answer:?}"
    );
    // A TLS ClientHello's first bytes to the PLAINTEXT port: an absurd frame size, closed.
    let mut stream = TcpStream::connect(s.broker.bootstrap()).unwrap();
    stream
        .write_all(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ])
        .unwrap();
    assert_closed(&mut stream, "TLS to the plaintext port");
    // A silent client on the TLS port holds nothing up; others are served meanwhile.
    let _silent = TcpStream::connect(s.addr("SSL")).unwrap();
    let mut other = TcpStream::connect(s.broker.bootstrap()).unwrap();
    other
        .write_all(&request_frame(
            ApiKey::Metadata,
            12,
            2,
            &MetadataRequest::default(),
        ))
        .unwrap();
    other.set_read_timeout(Some(T)).unwrap();
    assert!(read_frame(&mut other).is_ok(), "other clients are served");
}

#[test]
fn certificates_are_reloaded_when_their_files_change() {
    if !kcat_installed() {
        eprintln!("kcat is not installed: skipped");
        return;
    }
    let (s, _old_ca) = tls_broker(&[]);
    let new_ca = ca("chronik test CA 2");
    let (cert, key) = leaf(&new_ca, &["localhost"], "broker", false);
    let new_ca_path = s.path("new-ca.pem");
    write(&new_ca_path, &new_ca.cert.pem());
    let settings = |ca: &Path| {
        vec![
            ("security.protocol", "SSL".to_string()),
            ("ssl.ca.location", ca.display().to_string()),
        ]
    };
    let addr = s.addr("SSL");
    let list = ["-b", addr.as_str(), "-L"];
    assert!(
        !kcat(&settings(&new_ca_path), &list, "").0,
        "not yet the new CA"
    );
    write(&s.path("server.key"), &key);
    write(&s.path("server.pem"), &cert);
    let (ok, out) = kcat(&settings(&new_ca_path), &list, "");
    assert!(
        ok,
        "the new certificate is served: {out}; log:\n{}",
        s.broker.log()
    );
}

/// KIP-368: with `connections_max_reauth_ms` the session lifetime is told, a request after it
/// closes the connection, and a re-authentication on the same connection extends it.
#[test]
fn sessions_expire_unless_they_re_authenticate() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "connections_max_reauth_ms = 1500",
        &[("alice", "SCRAM-SHA-256", "alice-secret")],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let metadata = |stream: &mut TcpStream| {
        stream
            .write_all(&request_frame(
                ApiKey::Metadata,
                12,
                7,
                &MetadataRequest::default(),
            ))
            .unwrap();
        read_frame(stream).is_ok()
    };

    let (mut lapsed, response) = raw_plain(&addr, "alice", "alice-secret");
    assert_eq!(
        (response.error_code, response.session_lifetime_ms),
        (0, 1500)
    );
    assert!(metadata(&mut lapsed));

    let (mut renewed, _) = raw_plain(&addr, "alice", "alice-secret");
    std::thread::sleep(Duration::from_millis(1000));
    let handshake: SaslHandshakeResponse = exchange_on(
        &mut renewed,
        ApiKey::SaslHandshake,
        1,
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    )
    .unwrap();
    assert_eq!(handshake.error_code, 0);
    let again: SaslAuthenticateResponse = exchange_on(
        &mut renewed,
        ApiKey::SaslAuthenticate,
        2,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from("\0alice\0alice-secret")),
    )
    .unwrap();
    assert_eq!((again.error_code, again.session_lifetime_ms), (0, 1500));
    std::thread::sleep(Duration::from_millis(800));

    assert!(metadata(&mut renewed), "re-authenticated: still served");
    lapsed
        .write_all(&request_frame(
            ApiKey::Metadata,
            12,
            8,
            &MetadataRequest::default(),
        ))
        .unwrap();
    assert_closed(&mut lapsed, "a request after the session ended");
}

/// SaslHandshake v0: the tokens that follow are raw (size-prefixed, no Kafka header), and so
/// are the broker's answers.
#[test]
fn a_v0_handshake_takes_raw_tokens() {
    let s = Secured::start(
        &["SASL_PLAINTEXT"],
        "",
        &[("alice", "SCRAM-SHA-256", "alice-secret")],
    );
    let addr = s.addr("SASL_PLAINTEXT");
    let raw = |password: &str| {
        let mut stream = TcpStream::connect(&addr).unwrap();
        let handshake: SaslHandshakeResponse = exchange_on(
            &mut stream,
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
        )
        .unwrap();
        assert_eq!(handshake.error_code, 0);
        let token = format!("\0alice\0{password}");
        let mut frame = (token.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(token.as_bytes());
        stream.write_all(&frame).unwrap();
        stream
    };
    let mut ok = raw("alice-secret");
    ok.set_read_timeout(Some(T)).unwrap();
    let mut size = [0u8; 4];
    ok.read_exact(&mut size).unwrap();
    assert_eq!(u32::from_be_bytes(size), 0, "PLAIN's empty last token");
    ok.write_all(&request_frame(
        ApiKey::Metadata,
        12,
        3,
        &MetadataRequest::default(),
    ))
    .unwrap();
    assert!(read_frame(&mut ok).is_ok(), "authenticated: served");
    assert_closed(&mut raw("wrong"), "a failed raw authentication");
}

/// Three brokers with an INTERNAL (plaintext, inter-broker) and a SASL_PLAINTEXT listener each:
/// a client that bootstraps on one SASL port is told every broker's SASL port and produces to
/// leaders on all of them (acks=all: the followers replicate over INTERNAL), and reads back.
#[tokio::test]
async fn a_cluster_answers_each_client_on_its_listener() {
    let sasl_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    let cluster = chronik_integration::Cluster::start_with_node_args(3, &[], |id, port| {
        let sasl = sasl_ports[(id - 1) as usize];
        [
            "--listeners",
            &format!("INTERNAL://127.0.0.1:{port},SASL_PLAINTEXT://127.0.0.1:{sasl}"),
            "--listener-security-protocol-map",
            "INTERNAL:PLAINTEXT",
            "--inter-broker-listener-name",
            "INTERNAL",
        ]
        .map(str::to_string)
        .to_vec()
    });
    let internal = cluster.bootstrap();
    add_user_through_first_broker(&internal, "alice", "alice-secret");
    core_util::create_replicated_topic(&internal, "spread", 3, 3, &[]).await;

    let addr = format!("127.0.0.1:{}", sasl_ports[0]);
    let config = sasl_config(&addr, "PLAIN", "alice", "alice-secret");
    let producer: BaseProducer = config.create().unwrap();
    let metadata = producer.client().fetch_metadata(Some("spread"), T).unwrap();
    let mut ports: Vec<u16> = metadata.brokers().iter().map(|b| b.port() as u16).collect();
    ports.sort();
    let mut expected = sasl_ports.clone();
    expected.sort();
    assert_eq!(ports, expected, "every broker at its SASL listener");

    let producer: FutureProducer = config.clone().set("acks", "all").create().unwrap();
    for partition in 0..3 {
        producer
            .send(
                FutureRecord::<str, str>::to("spread")
                    .partition(partition)
                    .payload("spread"),
                T,
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("partition {partition}: {e}"));
    }
    assert_eq!(consume_one(&config, "spread"), "spread");
}

/// Writes `server.pem` and `server.key` (a certificate for localhost and 127.0.0.1 signed by
/// `ca`) and `ca.pem` into `dir`.
fn write_broker_tls_files(dir: &Path, ca: &Ca) {
    let (cert, key) = leaf(ca, &["localhost"], "broker", false);
    write(&dir.join("server.pem"), &cert);
    write(&dir.join("server.key"), &key);
    write(&dir.join("ca.pem"), &ca.cert.pem());
}

/// Three nodes whose inter-broker listener INTERNAL speaks `protocol` (clients keep
/// PLAINTEXT), with the TLS files of `write_broker_tls_files` in `dir` and `extra` added to
/// each node's configuration.
fn cluster_with_internal_listener(
    dir: &Path,
    protocol: &str,
    extra: &str,
) -> chronik_integration::Cluster {
    let internal_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
    chronik_integration::Cluster::start_with_node_args(3, &[], |id, port| {
        let internal = internal_ports[(id - 1) as usize];
        let config = dir.join(format!("node{id}.toml"));
        let file = |name: &str| format!("{:?}", dir.join(name));
        write(
            &config,
            &format!(
                "listeners = \"PLAINTEXT://127.0.0.1:{port},INTERNAL://127.0.0.1:{internal}\"\n\
                 listener_security_protocol_map = \"INTERNAL:{protocol}\"\n\
                 inter_broker_listener_name = \"INTERNAL\"\n\
                 ssl_certificate_file = {}\nssl_key_file = {}\nssl_ca_file = {}\n{extra}",
                file("server.pem"),
                file("server.key"),
                file("ca.pem")
            ),
        );
        vec!["--config".to_string(), config.display().to_string()]
    })
}

/// Sends one acks=all message to each of `topic`'s first `partitions` partitions and fails the
/// test unless all are acknowledged well before a follower that could not fetch would leave
/// the ISR (30 s).
async fn acks_all_to_each_partition(bootstrap: &str, topic: &str, partitions: i32) {
    let producer: FutureProducer = core_util::config(
        bootstrap,
        &[("acks", "all"), ("message.timeout.ms", "15000")],
    )
    .create()
    .unwrap();
    let started = Instant::now();
    for partition in 0..partitions {
        producer
            .send(
                FutureRecord::<str, str>::to(topic)
                    .partition(partition)
                    .payload("r"),
                T,
            )
            .await
            .unwrap_or_else(|(e, _)| panic!("{topic} partition {partition}: {e}"));
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "acks=all to {topic} waited {:?}: followers did not fetch",
        started.elapsed()
    );
}

/// Brokers replicate over a SASL_SSL inter-broker listener: each authenticates with SCRAM as
/// the super user `broker` (created through AlterUserScramCredentials on the clients'
/// PLAINTEXT listener) and verifies the others' certificates against the CA.
#[tokio::test]
async fn brokers_replicate_over_a_sasl_ssl_inter_broker_listener() {
    let dir = tempfile::tempdir().unwrap();
    write_broker_tls_files(dir.path(), &ca("chronik test CA"));
    let cluster = cluster_with_internal_listener(
        dir.path(),
        "SASL_SSL",
        "inter_broker_sasl_mechanism = \"SCRAM-SHA-256\"\n\
         inter_broker_sasl_username = \"broker\"\n\
         inter_broker_sasl_password = \"broker-secret\"\n\
         super_users = \"User:broker\"\n\
         allow_everyone_if_no_acl_found = true\n",
    );
    let bootstrap = cluster.bootstrap();
    add_user_through_first_broker(&bootstrap, "broker", "broker-secret");
    core_util::create_replicated_topic(&bootstrap, "replicated", 3, 3, &[]).await;
    for _round in 0..3 {
        acks_all_to_each_partition(&bootstrap, "replicated", 3).await;
    }
}

/// A rotated certificate and CA reach the replica fetchers without a restart, as they reach
/// the listeners. Every node's files change to a new CA; node 1, restarted, then serves only
/// the new certificate, and the other two, still running, must verify it against the new CA
/// to replicate the partition it leads.
#[tokio::test]
async fn replica_fetchers_take_rotated_certificates() {
    let dir = tempfile::tempdir().unwrap();
    write_broker_tls_files(dir.path(), &ca("chronik test CA"));
    let mut cluster = cluster_with_internal_listener(dir.path(), "SSL", "");
    let bootstrap = cluster.bootstrap();
    core_util::create_replicated_topic(&bootstrap, "before", 3, 3, &[]).await;
    // The fetchers connect under the first CA.
    acks_all_to_each_partition(&bootstrap, "before", 3).await;

    write_broker_tls_files(dir.path(), &ca("chronik test CA 2"));
    cluster.node(1).restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    while core_util::status_brokers(&bootstrap)
        .is_none_or(|brokers| brokers.len() != 3 || brokers.values().any(|b| b.state != "alive"))
    {
        assert!(Instant::now() < deadline, "node 1 is not back");
        std::thread::sleep(Duration::from_millis(200));
    }
    core_util::create_replicated_topic(&bootstrap, "after", 3, 3, &[]).await;
    let metadata = core_util::consumer(&bootstrap)
        .fetch_metadata(Some("after"), T)
        .unwrap();
    let led_by_1 = metadata.topics()[0]
        .partitions()
        .iter()
        .filter(|p| p.leader() == 1)
        .count();
    assert!(led_by_1 > 0, "node 1 leads a partition of the new topic");
    acks_all_to_each_partition(&bootstrap, "after", 3).await;
}

/// `ssl_client_auth = "required"`: a client without a certificate from the CA is refused at
/// the handshake; one with it is served.
#[test]
fn required_client_certificates() {
    if !kcat_installed() {
        eprintln!("kcat is not installed: skipped");
        return;
    }
    let (s, test_ca) = tls_broker_with(&[], "required");
    let ca_location = s.path("ca.pem").display().to_string();
    let addr = s.addr("SSL");
    let list = ["-b", addr.as_str(), "-L", "-m", "3"];
    let without = vec![
        ("security.protocol", "SSL".to_string()),
        ("ssl.ca.location", ca_location.clone()),
    ];
    let (ok, out) = kcat(&without, &list, "");
    assert!(!ok, "no client certificate: {out}");
    let stranger = ca("another CA");
    let mut foreign = without.clone();
    foreign.extend(client_files(&s, &stranger, "mallory"));
    let (ok, out) = kcat(&foreign, &list, "");
    assert!(!ok, "a certificate from another CA: {out}");
    let mut with = without.clone();
    with.extend(client_files(&s, &test_ca, "alice"));
    let (ok, out) = kcat(&with, &list, "");
    assert!(ok, "alice's certificate: {out}; log:\n{}", s.broker.log());
}
