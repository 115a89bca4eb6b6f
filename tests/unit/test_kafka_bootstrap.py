"""A deployment names several brokers in KAFKA_BOOTSTRAP_SERVERS; every client reaches each."""

from services.platform.kafka import bootstrap_hosts


def test_a_list_of_brokers_becomes_one_address_each_blanks_and_empties_dropped() -> None:
    assert bootstrap_hosts("127.0.0.1:9092, 127.0.0.1:9094,,127.0.0.1:9096 ") == [
        "127.0.0.1:9092",
        "127.0.0.1:9094",
        "127.0.0.1:9096",
    ]
    assert bootstrap_hosts("kafka:9092") == ["kafka:9092"]
