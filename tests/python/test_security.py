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
    retries its bootstrap and reports only a timeout)."""
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="kafka"):
        with pytest.raises(KafkaError):
            KafkaProducer(max_block_ms=3000, bootstrap_timeout_ms=3000,
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
