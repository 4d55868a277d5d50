"""Property-based: no path id or body ever produces a 500."""

from __future__ import annotations

import json
import string
from urllib.parse import quote

from flask import Flask
from hypothesis import given, settings
from hypothesis import strategies as st

from flask_email_cancel import EmailCancel, InMemoryQueueRepository, Principal
from flask_email_cancel.schemas import MAX_REQUEST_ID, parse_request_id
from flask_email_cancel.views import CONTENT_TYPE

from .conftest import later
from .openapi_conformance import ConformingClient

REPO = InMemoryQueueRepository()
APP = Flask(__name__)
EmailCancel(APP, repository=REPO, authenticator=lambda request: Principal("fuzz"))
APP.test_client_class = ConformingClient  # every answer must match the document
CLIENT = APP.test_client()

ids = st.one_of(
    st.text(min_size=1, max_size=40),
    st.text(alphabet=string.digits, min_size=1, max_size=25),
    st.integers(min_value=-(2**70), max_value=2**70).map(str),
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(["id", "x", "message"]) | st.text(max_size=5), children, max_size=4
        )
    ),
    max_leaves=12,
)
bodies = st.one_of(st.binary(max_size=200), json_values.map(lambda v: json.dumps(v).encode()))
routes = st.sampled_from([("POST", "/api/v1/email/{}/cancel"), ("DELETE", "/api/v1/email/{}")])


@settings(max_examples=300, deadline=None)
@given(rid=ids, body=bodies, route=routes)
def test_no_path_id_or_body_is_a_500(rid: str, body: bytes, route: tuple[str, str]) -> None:
    method, template = route
    parsed = parse_request_id(rid)
    if parsed is not None:
        REPO.add(parsed, later(10**9))
    response = CLIENT.open(
        template.format(quote(rid, safe="")),
        method=method,
        data=body,
        content_type="application/json",
    )
    assert response.status_code in (200, 400, 404, 413)
    assert response.headers["Content-Type"] == CONTENT_TYPE
    document = response.get_json()
    assert set(document) >= {"id", "message"}
    if response.status_code == 200:
        assert parsed is not None and document["request_id"] == str(parsed)


@given(st.text(max_size=30))
def test_parse_request_id_accepts_exactly_the_positive_longs(text: str) -> None:
    value = parse_request_id(text)
    if value is None:
        ok = text.isascii() and text.isdigit() and 1 <= int(text) <= MAX_REQUEST_ID
        assert not ok
    else:
        assert text.isascii() and text.isdigit()
        assert value == int(text) and 1 <= value <= MAX_REQUEST_ID


@given(st.integers(min_value=1, max_value=MAX_REQUEST_ID))
def test_every_valid_id_round_trips(value: int) -> None:
    assert parse_request_id(str(value)) == value
