"""Record keys and partitioning, defined once.

Every keyed topic (raw mail, mailbox lifecycle, delivery) and the streams worker's
mailbox table are keyed by the *normalised recipient address*:

* the local part lower-cased, with any ``+tag`` removed;
* ``@``;
* the domain lower-cased, in its IDNA (punycode) form.

All producers must hash keys alike so the topics stay co-partitioned. Kafka's Java
client, Faust (aiokafka) and confluent-kafka with ``partitioner=murmur2_random`` all use
murmur2 over the key bytes; :func:`partition_for` is that function, for tests and tools.
"""

from __future__ import annotations

import functools
import unicodedata


class AddressError(ValueError):
    """An address that cannot be normalised (no ``@``, empty parts, bad IDNA)."""


#: Addresses and domains repeat (a mailbox's mail, a batch's deliveries): each is
#: normalised once while it stays among the most recent this many. Errors are not kept.
NORMALISED_CACHE = 4096


@functools.lru_cache(maxsize=NORMALISED_CACHE)
def normalise_domain(domain: str) -> str:
    """Lower-case a domain and return its IDNA (punycode) form, without a trailing dot."""
    text = unicodedata.normalize("NFC", domain.strip()).rstrip(".").lower()
    if not text:
        raise AddressError("empty domain")
    if text.isascii():
        labels = text.split(".")
    else:
        try:
            labels = [
                label if label.isascii() else "xn--" + label.encode("punycode").decode("ascii")
                for label in text.split(".")
            ]
        except UnicodeError as exc:  # pragma: no cover - punycode encodes any str
            raise AddressError(f"cannot encode domain {domain!r}: {exc}") from None
    if any(not label or len(label) > 63 for label in labels):
        raise AddressError(f"bad domain {domain!r}")
    return ".".join(labels)


@functools.lru_cache(maxsize=NORMALISED_CACHE)
def normalise_address(address: str) -> str:
    """Return the key of ``address``: ``local-without-tag@idna-domain``, lower-cased.

    >>> normalise_address("Alice+News@Bücher.Test")
    'alice@xn--bcher-kva.test'
    """
    text = address.strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1]
    local, at, domain = text.rpartition("@")
    if not at or not local or not domain:
        raise AddressError(f"{address!r} is not local@domain")
    local = unicodedata.normalize("NFC", local).lower().split("+", 1)[0]
    if not local:
        raise AddressError(f"{address!r} has an empty local part")
    return f"{local}@{normalise_domain(domain)}"


def key_bytes(address: str) -> bytes:
    """The Kafka key for ``address`` (normalised, UTF-8)."""
    return normalise_address(address).encode("utf-8")


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 hash (``org.apache.kafka.common.utils.Utils.murmur2``), signed 32-bit."""
    length = len(data)
    seed = 0x9747B28C
    m = 0x5BD1E995
    r = 24
    h = (seed ^ length) & 0xFFFFFFFF
    length4 = length // 4
    for i in range(length4):
        i4 = i * 4
        k = (
            (data[i4] & 0xFF)
            | ((data[i4 + 1] & 0xFF) << 8)
            | ((data[i4 + 2] & 0xFF) << 16)
            | ((data[i4 + 3] & 0xFF) << 24)
        )
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    extra = length % 4
    index = length & ~3
    if extra == 3:
        h ^= (data[index + 2] & 0xFF) << 16
    if extra >= 2:
        h ^= (data[index + 1] & 0xFF) << 8
    if extra >= 1:
        h ^= data[index] & 0xFF
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null ``key``."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
