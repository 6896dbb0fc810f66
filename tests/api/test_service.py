import pytest

from api import service
from api.errors import Invalid
from schemas.api import CursorError, decode_cursor, encode_cursor
from schemas.settings import Settings


def test_tokens_are_long_random_and_stored_hashed() -> None:
    tokens = {service.new_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert len(token) >= 43  # 256 bits, url-safe base64
    assert service.hash_token(token) != token and len(service.hash_token(token)) == 64


def test_random_usernames_are_valid() -> None:
    for _ in range(200):
        assert service.validate_username(service.random_username())


@pytest.mark.parametrize(
    "name", ["ab", "a" * 65, "-abc", "abc-", "a..b", "has space", "ünï", "postmaster", "Admin"]
)
def test_bad_or_reserved_usernames_are_refused(name: str) -> None:
    with pytest.raises(Invalid):
        service.validate_username(name)


def test_usernames_are_lower_cased() -> None:
    assert service.validate_username("Alice.Smith") == "alice.smith"


def test_choose_domain() -> None:
    settings = Settings()
    assert service.choose_domain(None, settings) in settings.domains
    assert service.choose_domain(settings.domains[0].upper(), settings) == settings.domains[0]
    with pytest.raises(Invalid):
        service.choose_domain("example.com", settings)


def test_cursor_round_trip_and_rejects_forgeries() -> None:
    assert decode_cursor(encode_cursor(42)) == 42
    for bad in ("", "!!!", encode_cursor(1)[:-1] + "*", "MTIz", "cy0x"):
        with pytest.raises(CursorError):
            decode_cursor(bad)
