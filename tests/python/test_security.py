"""kafka-python over SASL_SSL (issue 12): SCRAM-SHA-256, SCRAM-SHA-512 and PLAIN round trips
with a user created through AlterUserScramCredentials (usable at once), a deleted user refused,
and a wrong password answered exactly like an unknown user. Certificates come from the
openssl command line; the first user (a super user) from `chronik-server users add`."""

import logging
import re
import subprocess
import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, UserScramCredentialDeletion, UserScramCredentialUpsertion
from kafka.errors import KafkaError

from conftest import BrokerProcess, free_port, server_bin


def openssl(*args, cwd):
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(d):
    """A CA and a server certificate for 127.0.0.1 / localhost it signed (EC P-256, PEM)."""
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
            "-subj", "/CN=chronik python test CA", cwd=d)
    openssl("req", *ec, "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost",
            cwd=d)
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
            "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext", cwd=d)


@pytest.fixture
def secured(tmp_path):
    """A broker with PLAINTEXT and SASL_SSL listeners; admin (SCRAM-SHA-512) is a super user."""
    make_certificates(tmp_path)
    (tmp_path / "admin.pw").write_text("admin-secret")
    subprocess.run([str(server_bin()), "users", "add", "admin", "--mechanism", "SCRAM-SHA-512",
                    "--password-file", str(tmp_path / "admin.pw"),
                    "--data-dir", str(tmp_path / "data")], check=True, capture_output=True)
    port, sasl_port = free_port(), free_port()
    config = tmp_path / "chronik.toml"
    config.write_text(
        f'listeners = "PLAINTEXT://127.0.0.1:{port},SASL_SSL://127.0.0.1:{sasl_port}"\n'
        f'ssl_certificate_file = "{tmp_path / "server.pem"}"\n'
        f'ssl_key_file = "{tmp_path / "server.key"}"\n'
        'super_users = "User:admin"\n')
    b = BrokerProcess(tmp_path, ["--config", str(config)], port=port)
    b.sasl_ssl = f"127.0.0.1:{sasl_port}"
    b.ca = str(tmp_path / "ca.pem")
    yield b
    b.stop()


def client_config(broker, mechanism, user, password):
    return dict(bootstrap_servers=broker.sasl_ssl, security_protocol="SASL_SSL",
                ssl_cafile=broker.ca, sasl_mechanism=mechanism,
                sasl_plain_username=user, sasl_plain_password=password)


def admin(broker):
    return KafkaAdminClient(**client_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))


def round_trip(config, topic):
    producer = KafkaProducer(acks=1, **config)
    producer.send(topic, b"over sasl_ssl").get(timeout=20)
    producer.close()
    consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, **config)
    tp = TopicPartition(topic, 0)
    consumer.assign([tp])
    consumer.seek_to_beginning(tp)
    deadline = time.time() + 20
    values = []
    while not values and time.time() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            values.extend(m.value for m in batch)
    consumer.close()
    assert values == [b"over sasl_ssl"]


def auth_errors(config, caplog):
    """The broker's authentication error messages a client with this config logs (kafka-python
    retries its bootstrap and reports only a timeout; some of its attempts log only the closed
    connection, so it gets several seconds of them)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        with pytest.raises(KafkaError):
            KafkaProducer(max_block_ms=8000, bootstrap_timeout_ms=8000,
                          reconnect_backoff_max_ms=500, **config).send("t", b"x").get(timeout=5)
    pattern = re.compile(r"SaslAuthenticationFailedError: (Authentication failed[^()]*)")
    return {m.group(1).strip() for r in caplog.records for m in pattern.finditer(r.getMessage())}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_a_user_created_through_the_api_round_trips_at_once(secured, mechanism):
    a = admin(secured)
    a.alter_user_scram_credentials([
        UserScramCredentialUpsertion("alice", "SCRAM-SHA-256", "alice-secret"),
        UserScramCredentialUpsertion("alice", "SCRAM-SHA-512", "alice-secret"),
    ])
    a.close()
    round_trip(client_config(secured, mechanism, "alice", "alice-secret"),
               f"py-sasl-{mechanism.lower()}")


def test_deleted_users_and_wrong_passwords_are_refused_alike(secured, caplog):
    a = admin(secured)
    a.alter_user_scram_credentials(
        [UserScramCredentialUpsertion("carol", "SCRAM-SHA-256", "carol-secret")])
    carol = client_config(secured, "SCRAM-SHA-256", "carol", "carol-secret")
    round_trip(carol, "py-carol")
    wrong = auth_errors(client_config(secured, "SCRAM-SHA-256", "carol", "wrong"), caplog)
    unknown = auth_errors(client_config(secured, "SCRAM-SHA-256", "mallory", "x"), caplog)
    assert len(wrong) == 1 and "invalid credentials" in next(iter(wrong))
    assert wrong == unknown
    a.alter_user_scram_credentials([UserScramCredentialDeletion("carol", "SCRAM-SHA-256")])
    a.close()
    assert auth_errors(carol, caplog) == wrong


# confluent-kafka (librdkafka of the PyPI wheel, built with OpenSSL and SASL): the same promises
# through the client most Python users run, and ACLs acting on the authenticated principal.

def confluent_config(broker, mechanism, user, password, **extra):
    return {"bootstrap.servers": broker.sasl_ssl, "security.protocol": "SASL_SSL",
            "ssl.ca.location": broker.ca, "sasl.mechanism": mechanism,
            "sasl.username": user, "sasl.password": password, **extra}


def confluent_admin(broker):
    from confluent_kafka.admin import AdminClient
    return AdminClient(confluent_config(broker, "SCRAM-SHA-512", "admin", "admin-secret"))


def confluent_upsert(broker, user, password, mechanisms=("SCRAM-SHA-256", "SCRAM-SHA-512")):
    from confluent_kafka.admin import (ScramCredentialInfo, ScramMechanism,
                                       UserScramCredentialUpsertion)
    upserts = [UserScramCredentialUpsertion(
        user, ScramCredentialInfo(getattr(ScramMechanism, m.replace("-", "_")), 4096),
        password.encode()) for m in mechanisms]
    # The client must outlive its futures: destroyed, it fails them.
    client = confluent_admin(broker)
    for future in client.alter_user_scram_credentials(upserts).values():
        future.result(timeout=20)


def confluent_round_trip(config, topic):
    from confluent_kafka import Consumer, Producer
    delivered = []
    producer = Producer({**config, "acks": "all"})
    producer.produce(topic, b"confluent over sasl_ssl",
                     on_delivery=lambda err, msg: delivered.append(err))
    assert producer.flush(20) == 0
    assert delivered == [None]
    consumer = Consumer({**config, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    deadline, values = time.time() + 30, []
    while not values and time.time() < deadline:
        msg = consumer.poll(0.5)
        if msg is not None and msg.error() is None:
            values.append(msg.value())
    consumer.close()
    assert values == [b"confluent over sasl_ssl"]


def confluent_auth_error(config):
    """The authentication error librdkafka reports for this config (through error_cb)."""
    from confluent_kafka import KafkaError as CKafkaError, Producer
    errors = []
    producer = Producer({**config, "error_cb": errors.append})
    deadline = time.time() + 15
    while time.time() < deadline and not any(
            e.code() == CKafkaError._AUTHENTICATION for e in errors):
        producer.poll(0.2)
    auth = [e.str() for e in errors if e.code() == CKafkaError._AUTHENTICATION]
    assert auth, f"no authentication error, only {errors}"
    # Strip librdkafka's "host:port/bootstrap: " prefix and its timing suffix.
    return {re.sub(r"^.*?: ", "", a).split(" (after ")[0] for a in auth}


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"])
def test_confluent_kafka_round_trips_over_sasl_ssl(secured, mechanism):
    confluent_upsert(secured, "dave", "dave-secret")
    confluent_round_trip(confluent_config(secured, mechanism, "dave", "dave-secret"),
                         f"cfk-sasl-{mechanism.lower()}")


def test_confluent_kafka_wrong_password_and_unknown_user_fail_alike(secured):
    confluent_upsert(secured, "erin", "erin-secret", mechanisms=("SCRAM-SHA-256",))
    wrong = confluent_auth_error(confluent_config(secured, "SCRAM-SHA-256", "erin", "nope"))
    unknown = confluent_auth_error(confluent_config(secured, "SCRAM-SHA-256", "nobody", "x"))
    assert len(wrong) == 1 and "Authentication failed" in next(iter(wrong)), wrong
    assert wrong == unknown, (wrong, unknown)


def test_acls_act_on_the_authenticated_principal(secured):
    """An ACL allowing User:alice to write and read a topic lets alice in and keeps bob out."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import (AclBinding, AclOperation, AclPermissionType,
                                       NewTopic, ResourcePatternType, ResourceType)
    confluent_upsert(secured, "alice", "alice-secret")
    confluent_upsert(secured, "bob", "bob-secret")
    admin_client = confluent_admin(secured)
    topic = "cfk-acl"
    admin_client.create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=20)
    bindings = [AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL,
                           "User:alice", "*", op, AclPermissionType.ALLOW)
                for op in (AclOperation.WRITE, AclOperation.READ, AclOperation.DESCRIBE)]
    bindings.append(AclBinding(ResourceType.GROUP, f"g-{topic}", ResourcePatternType.LITERAL,
                               "User:alice", "*", AclOperation.READ, AclPermissionType.ALLOW))
    for future in admin_client.create_acls(bindings).values():
        future.result(timeout=20)
    confluent_round_trip(confluent_config(secured, "SCRAM-SHA-256", "alice", "alice-secret"),
                         topic)
    bob = Producer(confluent_config(secured, "SCRAM-SHA-256", "bob", "bob-secret",
                                    **{"acks": "all", "message.timeout.ms": 10000}))
    failures = []
    bob.produce(topic, b"from bob", on_delivery=lambda err, msg: failures.append(err))
    bob.flush(20)
    assert len(failures) == 1 and failures[0] is not None
    assert failures[0].name() == "TOPIC_AUTHORIZATION_FAILED", failures[0]
