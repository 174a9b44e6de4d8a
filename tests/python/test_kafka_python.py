"""kafka-python (a pure-Python client, its own protocol code) against chronik-server, no groups:
produce and read back with keys, headers, timestamps and compression, and admin create/delete
topic with the data leaving the disk."""

import time

import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError, UnknownTopicOrPartitionError


def read_all(broker, topic, partitions, expect, timeout_s=20):
    consumer = KafkaConsumer(
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        consumer_timeout_ms=1000,
    )
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    out = []
    deadline = time.time() + timeout_s
    while len(out) < expect and time.time() < deadline:
        for batch in consumer.poll(timeout_ms=200).values():
            out.extend(batch)
    consumer.close()
    return out


@pytest.mark.parametrize("compression", [None, "gzip"])
def test_produce_and_consume_round_trip(broker, compression):
    topic = f"py-round-trip-{compression or 'none'}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=4, replication_factor=1)])
    admin.close()

    producer = KafkaProducer(
        bootstrap_servers=broker.bootstrap, compression_type=compression, linger_ms=5, acks=1
    )
    base_ts = 1_650_000_000_000
    acked = {}
    futures = []
    for i in range(200):
        futures.append(
            (
                i,
                producer.send(
                    topic,
                    key=f"k{i}".encode(),
                    value=f"value-{i}".encode() * (1 + i % 5),
                    partition=i % 4,
                    timestamp_ms=base_ts + i,
                    headers=[("idx", str(i).encode())],
                ),
            )
        )
    producer.flush()
    for i, f in futures:
        meta = f.get(timeout=10)
        acked[i] = (meta.partition, meta.offset)
    producer.close()

    records = read_all(broker, topic, 4, 200)
    assert len(records) == 200
    for r in records:
        i = int(dict(r.headers)["idx"])
        assert (r.partition, r.offset) == acked[i]
        assert r.key == f"k{i}".encode()
        assert r.value == f"value-{i}".encode() * (1 + i % 5)
        assert r.timestamp == base_ts + i
        assert r.timestamp_type == 0  # CreateTime
    for p in range(4):
        offsets = [r.offset for r in records if r.partition == p]
        assert offsets == list(range(50)), f"partition {p}"


def test_admin_create_and_delete_topic(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic("py-admin", num_partitions=3, replication_factor=1)])
    assert "py-admin" in admin.list_topics()
    with pytest.raises(TopicAlreadyExistsError):
        admin.create_topics([NewTopic("py-admin", num_partitions=1, replication_factor=1)])

    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    producer.send("py-admin", b"x", partition=2).get(timeout=10)
    producer.close()
    data = broker.data_dir / "data"
    assert sorted(p.name for p in data.glob("py-admin-*")) == [
        "py-admin-0",
        "py-admin-1",
        "py-admin-2",
    ]

    admin.delete_topics(["py-admin"])
    deadline = time.time() + 10
    while list(data.glob("py-admin-*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(data.glob("py-admin-*")) == [], "partition directories left on disk"
    assert "py-admin" not in admin.list_topics()
    with pytest.raises(UnknownTopicOrPartitionError):
        admin.delete_topics(["py-admin"])
    admin.close()
