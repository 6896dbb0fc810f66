import pytest

from schemas.keys import AddressError, murmur2, normalise_address, normalise_domain, partition_for


@pytest.mark.parametrize(
    ("given", "key"),
    [
        ("alice@tmpmail.test", "alice@tmpmail.test"),
        ("Alice@TMPMAIL.Test", "alice@tmpmail.test"),
        ("alice+news@tmpmail.test", "alice@tmpmail.test"),
        ("Alice+a+b@tmpmail.test.", "alice@tmpmail.test"),
        ("<bob@burner.test>", "bob@burner.test"),
        ("bob@bücher.test", "bob@xn--bcher-kva.test"),
        ("Jürgen@Bücher.TEST", "jürgen@xn--bcher-kva.test"),
        ("weird@local@tmpmail.test", "weird@local@tmpmail.test"),
    ],
)
def test_normalise_address(given: str, key: str) -> None:
    assert normalise_address(given) == key


@pytest.mark.parametrize("bad", ["", "nobody", "@tmpmail.test", "a@", "+tag@tmpmail.test", "a@.."])
def test_normalise_address_rejects(bad: str) -> None:
    with pytest.raises(AddressError):
        normalise_address(bad)


def test_normalise_domain_is_idna_and_idempotent() -> None:
    assert normalise_domain("Bücher.Test") == "xn--bcher-kva.test"
    assert normalise_domain("xn--bcher-kva.test") == "xn--bcher-kva.test"


def test_murmur2_matches_kafka_reference_values() -> None:
    # Values from Kafka's UtilsTest.testMurmur2 (org.apache.kafka.common.utils).
    cases = {
        b"21": -973932308,
        b"foobar": -790332482,
        b"a-little-bit-long-string": -985981536,
        b"a-little-bit-longer-string": -1486304829,
        b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
        b"abc": 479470107,
    }
    for data, expected in cases.items():
        assert murmur2(data) == expected, data


def test_partition_for_is_in_range_and_spreads() -> None:
    keys = [f"user{i}@tmpmail.test".encode() for i in range(600)]
    parts = [partition_for(k, 6) for k in keys]
    assert set(parts) == set(range(6))
    assert min(parts.count(p) for p in range(6)) > 50
