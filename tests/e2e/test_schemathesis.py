"""Schemathesis against the running stack's own OpenAPI: no 5xx, nothing outside it.

The whole stack (``stack_sqlite``: Kafka, streams, ingest and the api, via ``tmpmail
up``) serves ``/openapi.json``; Schemathesis generates requests for every operation from
it (its examples, its coverage cases, then fuzzing, valid and invalid data alike) and
every answer must pass :data:`CHECKS`: not a server error, a documented status code, a
documented content type, the documented headers and a body of the documented schema.

Bounded and repeatable: a fixed seed, no example database, no generation fed by the
responses, :data:`MAX_EXAMPLES` fuzzed cases per operation: about 90 s on two cores,
the stack's start included. ``GET /api/events`` is left out: it never ends.

**Real data.** Two mailboxes get the same few mails over SMTP first (text, HTML with an
inline image and attachments of every served type, malformed MIME). Path parameters
are, half the time, one of their real message or (message, attachment) ids, and the
switch body one of their addresses, so every route is exercised past its 404; the run
fails unless every operation answered a 2xx at least once.

**Tokens** (:meth:`World.credentials`), as ``api/deps.py`` takes them: a Bearer header,
or the browser's cookies for the cookie routes. Nothing generated may revoke the token
the rest of the run needs, so:

* ``DELETE /api/mailbox`` and ``DELETE /api/messages`` get a mailbox of their own,
  created for each call (the deletion is exercised for real, the shared ones stay);
* ``DELETE /api/messages/{message_id}`` takes the second mailbox's ids and token, so
  the messages every read uses stay where they are;
* everything else uses the first mailbox.
"""

from __future__ import annotations

import inspect
import json
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import strategies as st
from pydantic import BaseModel
from schemathesis import Case, HookContext
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import schemas.api
from api.app import create_app
from schemas.api import ErrorBody
from schemas.settings import Settings
from tests.e2e.helpers import send_raw

SEED = 20250106
MAX_EXAMPLES = 50
REQUEST_TIMEOUT_S = 30.0
DELIVERY_TIMEOUT_S = 60.0

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]

CONFIG = schemathesis.Config.from_dict(
    {
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": MAX_EXAMPLES, "database": "none"},
        "phases": {
            "examples": {"extra-data-sources": {"responses": False}},
            "coverage": {"extra-data-sources": {"responses": False}},
            "fuzzing": {
                "extra-data-sources": {"responses": False},
                "error-feedback": {"enabled": False},
            },
            "stateful": {"enabled": False},
        },
        "request-timeout": REQUEST_TIMEOUT_S,
    }
)

#: Operations that get a new mailbox for every call; the one that deletes the second
#: mailbox's messages; the ones a browser calls with its cookies rather than a header.
FRESH_MAILBOX = frozenset({"DELETE /api/mailbox", "DELETE /api/messages"})
SECOND_MAILBOX = frozenset({"DELETE /api/messages/{message_id}"})
COOKIE_ROUTES = frozenset(
    {"GET /api/mailboxes", "POST /api/mailboxes/current", "DELETE /api/mailbox"}
)
#: One case in this many sends a token no mailbox has (the 401s are in the OpenAPI too).
UNKNOWN_TOKEN_EVERY = 7


# --- the mail both mailboxes receive ---------------------------------------------------------
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
ATTACHMENTS: list[tuple[bytes, str, str, str]] = [
    (b"%PDF-1.4\n% a tiny pdf\n%%EOF\n", "application", "pdf", "invoice.pdf"),
    (b"when,what\n2025-01-06,signed up\n", "text", "csv", "history.csv"),
    ("Grüße aus Köln\n".encode(), "text", "plain", "grüße.txt"),
    (b"<script>alert(1)</script>", "text", "html", "page.html"),
    (b"PK\x03\x04" + bytes(64), "application", "zip", "archive.zip"),
    (PNG, "image", "png", "photo.png"),
]


def _text_mail(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@example.com>"
    msg["To"] = to
    msg["Subject"] = "Your sign-in code"
    msg["Message-ID"] = "<text.schemathesis@example.com>"
    msg.set_content("Your code is 482913.\nOr open https://example.com/login?code=482913\n")
    return msg.as_bytes()


def _html_mail(to: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "News <news@example.com>"
    msg["To"] = to
    msg["Subject"] = "Ünïcödé newsletter with attachments"
    msg["Message-ID"] = "<html.schemathesis@example.com>"
    msg["List-Unsubscribe"] = "<https://example.com/unsubscribe?u=42>"
    msg.set_content("The text part of the newsletter.")
    msg.add_alternative(
        '<html><head><style>p { color: red; background: url("https://t.example/b.png") }'
        '</style></head><body><p onclick="steal()">Hello <b>reader</b></p>'
        '<img src="cid:logo@example.com"><img src="https://t.example/pixel.gif">'
        '<a href="javascript:alert(1)">x</a><a href="https://example.com/">site</a>'
        "<script>alert(document.cookie)</script><iframe src=https://evil.example></iframe>"
        "</body></html>",
        subtype="html",
    )
    html = msg.get_body(("html",))
    assert html is not None
    html.add_related(PNG, "image", "png", cid="<logo@example.com>")
    for data, maintype, subtype, filename in ATTACHMENTS:
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return msg.as_bytes()


def _malformed_mail(to: str) -> bytes:
    return (
        f"From: =?bogus?Q?broken?= <odd@example.com>\r\nTo: {to}\r\n"
        "Subject: =?utf-8?B?not base64!?=\r\nMessage-ID: <malformed.schemathesis@example.com>\r\n"
        'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
        "--b1\r\nContent-Type: text/html; charset=x-unknown\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n\r\n"
        "<p>caf=E9 <b>unclosed <i>tags\r\n"
        '--b1\r\nContent-Type: application/octet-stream; name="\x00"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n!!not base64!!\r\n"
    ).encode("utf-8", "surrogateescape")


MAILS = (_text_mail, _html_mail, _malformed_mail)


# --- the world the run works in --------------------------------------------------------------
@dataclass(frozen=True)
class Box:
    address: str
    token: str
    #: Message ids, oldest first; and (message id, attachment id) pairs.
    messages: tuple[str, ...] = ()
    attachments: tuple[tuple[str, str], ...] = ()


UNKNOWN = Box("nobody@tmpmail.test", "never-issued-" + "0" * 32)


@dataclass
class World:
    """A client of the stack, its two seeded mailboxes, and what each operation answered."""

    client: httpx.Client
    reader: Box
    deleter: Box
    answered: defaultdict[str, set[int]] = field(default_factory=lambda: defaultdict(set))

    def credentials(self, case: Case) -> dict[str, str]:
        """The headers that authenticate ``case``'s request (see the module docstring)."""
        label = case.operation.label
        if case.headers and ("authorization" in case.headers or "cookie" in case.headers):
            return {}  # the unknown token of flatmap_headers
        if label in FRESH_MAILBOX:
            box = _new_mailbox(self.client)
        elif label in SECOND_MAILBOX:
            box = self.deleter
        else:
            box = self.reader
        return _credentials(label, box, self.deleter if box is not self.deleter else self.reader)


def _credentials(label: str, box: Box, other: Box) -> dict[str, str]:
    """A browser's cookies (``other`` as its earlier mailbox) or a client's Bearer header."""
    if label in COOKIE_ROUTES:
        return {"Cookie": f"tmpmail_token={box.token}; tmpmail_recent={other.token}"}
    return {"Authorization": f"Bearer {box.token}"}


def _new_mailbox(client: httpx.Client) -> Box:
    response = client.post("/api/mailboxes")
    assert response.status_code == 201, response.text
    data = response.json()
    return Box(data["address"], data["token"])


def _seeded(client: httpx.Client, settings: Settings, box: Box) -> Box:
    for make in MAILS:
        send_raw(settings, box.address, make(box.address))
    headers = {"Authorization": f"Bearer {box.token}"}
    deadline = time.monotonic() + DELIVERY_TIMEOUT_S
    while True:
        listed = client.get("/api/messages", headers=headers, params={"limit": 100}).json()
        if len(listed["messages"]) == len(MAILS):
            break
        assert time.monotonic() < deadline, f"not all mail was stored in time: {listed}"
        time.sleep(0.1)
    ids = tuple(m["id"] for m in reversed(listed["messages"]))
    pairs = tuple(
        (message_id, attachment["id"])
        for message_id in ids
        for attachment in client.get(f"/api/messages/{message_id}", headers=headers).json()[
            "attachments"
        ]
    )
    assert len(pairs) >= len(ATTACHMENTS), pairs  # the HTML mail's, and the inline image
    return Box(box.address, box.token, ids, pairs)


@pytest.fixture
def world(stack_sqlite: Settings) -> Iterator[World]:
    with httpx.Client(base_url=stack_sqlite.http_url, timeout=REQUEST_TIMEOUT_S) as client:
        reader, deleter = (_seeded(client, stack_sqlite, _new_mailbox(client)) for _ in range(2))
        world = World(client, reader, deleter)
        yield world
    # The run is only worth something if every operation got past its refusals.
    never_succeeded = {
        label: sorted(statuses)
        for label, statuses in world.answered.items()
        if not any(200 <= status < 300 for status in statuses)
    }
    assert world.answered, "no operation was called"
    assert not never_succeeded, f"operations that never answered 2xx: {never_succeeded}"


@pytest.fixture
def api_schema(stack_sqlite: Settings, world: World) -> schemathesis.BaseSchema:
    schema = schemathesis.openapi.from_url(f"{stack_sqlite.http_url}/openapi.json", config=CONFIG)

    @schema.hook
    def flatmap_path_parameters(
        context: HookContext, path_parameters: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        """Half the time, real ids: the second mailbox's for the delete, else the first's."""
        operation = context.operation
        label = operation.label if operation is not None else ""
        box = world.deleter if label in SECOND_MAILBOX else world.reader
        names = set(path_parameters or ())
        if names == {"message_id", "attachment_id"}:
            real = [{"message_id": m, "attachment_id": a} for m, a in box.attachments]
        elif names == {"message_id"}:
            real = [{"message_id": m} for m in box.messages]
        else:
            return st.just(path_parameters)
        return st.one_of(st.just(path_parameters), st.sampled_from(real))

    @schema.hook
    def flatmap_headers(
        context: HookContext, headers: dict[str, Any] | None
    ) -> st.SearchStrategy[dict[str, Any] | None]:
        """One case in :data:`UNKNOWN_TOKEN_EVERY` carries a token never issued (drawn, so
        a replay of the case sends the same); :meth:`World.credentials` leaves it."""
        operation = context.operation
        label = operation.label if operation is not None else ""
        unknown = {**(headers or {}), **_credentials(label, UNKNOWN, world.reader)}
        last = UNKNOWN_TOKEN_EVERY - 1  # not 0: Hypothesis shrinks towards the known token
        return st.integers(0, last).map(lambda i: unknown if i == last else headers)

    @schema.hook
    def flatmap_body(context: HookContext, body: Any) -> st.SearchStrategy[Any]:
        """Half the time, the switch names one of the browser's mailboxes (any case)."""
        operation = context.operation
        if operation is None or operation.label != "POST /api/mailboxes/current":
            return st.just(body)
        known = [world.reader.address, world.deleter.address.upper()]
        return st.one_of(st.just(body), st.sampled_from([{"address": a} for a in known]))

    return schema


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    """Schemathesis 4.32.5's lazy schema reads ``item._nodeid``, which pytest 9.2 no
    longer has (it keeps ``_id``): give it the string it expects."""
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema").exclude(method="GET", path="/api/events")


@schema.parametrize()
def test_every_answer_is_in_the_openapi(case: Case, world: World) -> None:
    response = case.call_and_validate(headers=world.credentials(case), checks=CHECKS)
    world.answered[case.operation.label].add(response.status_code)


# --- the OpenAPI's own examples and error shape, without a stack ------------------------------
API_MODELS = sorted(
    (
        model
        for model in vars(schemas.api).values()
        if inspect.isclass(model)
        and issubclass(model, BaseModel)
        and model.__module__ == schemas.api.__name__
    ),
    key=lambda model: model.__name__,
)


@pytest.mark.parametrize("model", API_MODELS, ids=lambda model: model.__name__)
def test_every_shape_shows_an_example_the_api_could_send(model: type[BaseModel]) -> None:
    examples = model.model_json_schema(mode="serialization").get("examples")
    assert examples, f"{model.__name__} shows no example in the OpenAPI"
    for example in examples:
        parsed = model.model_validate_json(json.dumps(example), strict=True)
        assert parsed.model_dump(mode="json", by_alias=True) == example  # whole, as sent


def test_every_error_is_documented_in_the_one_shape(tmp_path: Path) -> None:
    spec = create_app(Settings(state_dir=tmp_path)).openapi()
    # FastAPI's own 422 shape appears only for a route that forgot to declare ours.
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    errors = 0
    for path, operations in spec["paths"].items():
        for method, operation in operations.items():
            for status, response in operation["responses"].items():
                if int(status) < 400 or path == "/readyz":
                    continue
                where = (method, path, status)
                media = response["content"]["application/json"]
                assert media["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, where
                assert media["examples"], where
                for example in media["examples"].values():
                    ErrorBody.model_validate(example["value"], strict=True)
                if status == "429":
                    assert response["headers"]["Retry-After"]["required"] is True, where
                errors += 1
    assert errors > 50  # every /api route declares its errors


def test_routes_that_need_a_mailbox_declare_its_two_credentials(tmp_path: Path) -> None:
    spec = create_app(Settings(state_dir=tmp_path)).openapi()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        **_described(schemes["bearer"]),
    }
    assert (schemes["cookie"]["in"], schemes["cookie"]["name"]) == ("cookie", "tmpmail_token")
    secured = {
        (method, path)
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
        if operation.get("security") == [{"bearer": []}, {"cookie": []}]
    }
    assert ("get", "/api/messages") in secured and ("get", "/api/events") in secured
    assert ("post", "/api/mailboxes") not in secured  # anyone may create one
    for method, path in secured:  # each says what happens without one
        assert "401" in spec["paths"][path][method]["responses"], (method, path)


def _described(scheme: dict[str, str]) -> dict[str, str]:
    return {"description": scheme["description"]} if "description" in scheme else {}
