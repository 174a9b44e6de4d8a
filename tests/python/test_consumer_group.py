"""A pure-Python (kafka-python) group consumer with auto-commit against chronik-server."""

import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic


def make_consumer(broker, group, topic):
    return KafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=True,
        auto_commit_interval_ms=200,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
        consumer_timeout_ms=10000,
    )


def test_auto_commit_group_consumer_resumes_where_it_left_off(broker):
    topic, group = "py-topic", "py-group"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap)
    for i in range(100):
        producer.send(topic, key=str(i).encode(), value=str(i).encode())
    producer.flush()

    consumer = make_consumer(broker, group, topic)
    seen = set()
    for msg in consumer:
        seen.add(int(msg.value))
        if len(seen) == 100:
            break
    assert seen == set(range(100))
    time.sleep(0.5)  # let one auto-commit interval pass
    consumer.close()  # commits once more and leaves the group

    # The group's committed offsets cover every partition's end.
    check = KafkaConsumer(bootstrap_servers=broker.bootstrap, group_id=group)
    partitions = [TopicPartition(topic, p) for p in range(3)]
    committed = sum(check.committed(tp) or 0 for tp in partitions)
    assert committed == 100
    check.close()

    listed = admin.list_groups()
    assert group in repr(listed), listed
    described = admin.describe_groups([group])
    assert "Empty" in repr(described), described

    # New messages only: a new member of the same group resumes after the committed offsets.
    for i in range(100, 120):
        producer.send(topic, key=str(i).encode(), value=str(i).encode())
    producer.flush()
    consumer = make_consumer(broker, group, topic)
    later = set()
    for msg in consumer:
        later.add(int(msg.value))
        if len(later) == 20:
            break
    consumer.close()
    assert later == set(range(100, 120))
    admin.close()
    producer.close()
