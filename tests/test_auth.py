"""Every built-in authenticator, through the HTTP API."""

from __future__ import annotations

import base64
import logging

import pytest
from flask import Flask, Request

from flask_email_cancel import (
    AccessTokenAuth,
    AnyOf,
    Authenticator,
    BasicAuth,
    BearerAuth,
    EmailCancel,
    InMemoryQueueRepository,
    Principal,
    TokenHeaderAuth,
)
from flask_email_cancel import auth as auth_module

from .conftest import later

ALICE = Principal(id="alice", tenant=None)


def basic(user: str, password: str) -> dict[str, str]:
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def verify_pair(expected_user: str, expected_secret: str):  # type: ignore[no-untyped-def]
    def verify(user: str, secret: str) -> Principal | None:
        return ALICE if (user, secret) == (expected_user, expected_secret) else None

    return verify


def verify_token(expected: str):  # type: ignore[no-untyped-def]
    def verify(token: str) -> Principal | None:
        return ALICE if token == expected else None

    return verify


# (authenticator, good headers, bad headers, WWW-Authenticate of its 401s)
CASES = {
    "basic-callable": (
        BasicAuth(verify_pair("alice", "pw")),
        basic("alice", "pw"),
        [basic("alice", "nope"), basic("bob", "pw"), {"Authorization": "Basic !!!"}],
        'Basic realm="email-cancel", charset="UTF-8"',
    ),
    "basic-mapping": (
        BasicAuth({"alice": ("pw", ALICE), "carol": "pw2"}, realm="mail"),
        basic("alice", "pw"),
        [basic("alice", "pw2"), basic("carol", "pw"), basic("", ""), basic("alice", "")],
        'Basic realm="mail", charset="UTF-8"',
    ),
    "token-header-callable": (
        TokenHeaderAuth(verify_token("tok")),
        {"X-VoltMX-Authorization": "tok"},
        [{"X-VoltMX-Authorization": "tok2"}, {"X-VoltMX-Authorization": ""}, {"Token": "tok"}],
        None,
    ),
    "token-header-mapping-custom-header": (
        TokenHeaderAuth({"tok": ALICE, "other": "bob"}, header="X-Api-Key"),
        {"X-Api-Key": "tok"},
        [{"X-VoltMX-Authorization": "tok"}, {"X-Api-Key": "to"}, {"X-Api-Key": "tokk"}],
        None,
    ),
    "access-token-pair-callable": (
        AccessTokenAuth(verify_pair("key", "secret")),
        {"AccessToken": "key", "AccessSecret": "secret"},
        [{"AccessToken": "key"}, {"AccessToken": "key", "AccessSecret": "x"}],
        None,
    ),
    "access-token-pair-mapping": (
        AccessTokenAuth({"key": ("secret", ALICE), "key2": "secret2"}),
        {"AccessToken": "key", "AccessSecret": "secret"},
        [
            {"AccessToken": "key", "AccessSecret": "secret2"},
            {"AccessToken": "key2", "AccessSecret": "secret"},
            {"AccessSecret": "secret"},
        ],
        None,
    ),
    "bearer-callable": (
        BearerAuth(verify_token("tok")),
        {"Authorization": "Bearer tok"},
        [
            {"Authorization": "Bearer nope"},
            {"Authorization": "Basic tok"},
            {"Authorization": "Bearer"},
        ],
        'Bearer realm="email-cancel"',
    ),
    "bearer-mapping": (
        BearerAuth({"tok": ALICE}),
        {"Authorization": "Bearer tok"},
        [{"Authorization": "Bearer tok2"}, {"X-VoltMX-Authorization": "tok"}],
        'Bearer realm="email-cancel"',
    ),
    "any-of": (
        AnyOf(TokenHeaderAuth({"tok": ALICE}), BearerAuth({"b": ALICE})),
        {"Authorization": "Bearer b"},
        [{"Authorization": "Bearer tok"}, {"X-VoltMX-Authorization": "b"}],
        'Bearer realm="email-cancel"',
    ),
    "plain-callable": (
        lambda request: ALICE if request.headers.get("X-Mine") == "yes" else None,
        {"X-Mine": "yes"},
        [{"X-Mine": "no"}],
        None,
    ),
}


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    authenticator, good, bad, challenge = CASES[request.param]
    repo = InMemoryQueueRepository()
    app = Flask(__name__)
    EmailCancel(app, repository=repo, authenticator=authenticator)
    return app.test_client(), repo, good, bad, challenge


def test_valid_credentials_cancel(case, route):
    client, repo, good, _, _ = case
    repo.add(3, later(10**9))
    method, template = route
    response = client.open(template.format(id=3), method=method, headers=good)
    assert response.status_code == 200


def test_invalid_credentials_are_401_with_the_scheme_challenge(case, route):
    client, repo, _, bad, challenge = case
    repo.add(3, later(10**9))
    method, template = route
    for headers in [{}, *bad]:
        response = client.open(template.format(id=3), method=method, headers=headers)
        assert response.status_code == 401, headers
        assert response.get_json() == {"id": "", "message": "Unauthorized request"}
        assert response.headers.get("WWW-Authenticate") == challenge
    assert [e.status for e in repo.entries(3)] == ["pending"]


def test_principal_reaches_the_repository():
    seen: list[Principal] = []
    app = Flask(__name__)
    EmailCancel(
        app,
        repository=lambda rid, principal: seen.append(principal) or 1,
        authenticator=TokenHeaderAuth({"tok": Principal("svc", tenant="t1")}),
    )
    app.test_client().post("/api/v1/email/1/cancel", headers={"X-VoltMX-Authorization": "tok"})
    assert seen == [Principal("svc", tenant="t1")]


def test_no_authenticator_denies_everything_and_warns(caplog):
    repo = InMemoryQueueRepository()
    repo.add(1, later(10**9))
    app = Flask(__name__)
    with caplog.at_level(logging.WARNING, logger=app.logger.name):
        EmailCancel(app, repository=repo)
    assert any("no authenticator" in r.getMessage() for r in caplog.records)
    client = app.test_client()
    for headers in [{}, {"X-VoltMX-Authorization": "anything"}, basic("a", "b")]:
        assert client.post("/api/v1/email/1/cancel", headers=headers).status_code == 401
    assert [e.status for e in repo.entries(1)] == ["pending"]


def test_mapping_lookup_compares_every_key_in_constant_time(monkeypatch):
    compared: list[bytes] = []
    real = auth_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        assert isinstance(a, bytes) and isinstance(b, bytes)
        compared.append(a)
        return real(a, b)

    monkeypatch.setattr(auth_module.hmac, "compare_digest", spy)
    tokens = {f"token-{n}": Principal(str(n)) for n in range(5)}
    authenticator = TokenHeaderAuth(tokens)
    app = Flask(__name__)
    with app.test_request_context(headers={"X-VoltMX-Authorization": "token-0"}):
        from flask import request

        assert authenticator.authenticate(request) == Principal("0")
    # No early exit on the first match: every key was compared.
    assert sorted(compared) == sorted(k.encode() for k in tokens)


def test_pair_lookup_compares_a_secret_even_for_unknown_names(monkeypatch):
    compared: list[tuple[bytes, bytes]] = []
    real = auth_module.hmac.compare_digest
    monkeypatch.setattr(
        auth_module.hmac,
        "compare_digest",
        lambda a, b: compared.append((a, b)) or real(a, b),
    )
    authenticator = AccessTokenAuth({"key": "secret"})
    app = Flask(__name__)
    headers = {"AccessToken": "unknown", "AccessSecret": "guess"}
    with app.test_request_context(headers=headers):
        from flask import request

        assert authenticator.authenticate(request) is None
    assert (b"key", b"unknown") in compared
    assert any(b == b"guess" for _, b in compared)


def test_non_ascii_credentials_do_not_raise():
    authenticator = TokenHeaderAuth({"jeton-é": ALICE})
    app = Flask(__name__)
    with app.test_request_context(headers={"X-VoltMX-Authorization": "jeton-\udce9"}):
        from flask import request

        assert authenticator.authenticate(request) is None


@pytest.mark.parametrize(
    "make",
    [
        lambda: TokenHeaderAuth({}),
        lambda: BasicAuth({"": "pw"}),
        lambda: AnyOf(),
    ],
)
def test_bad_authenticator_configuration_is_rejected(make):
    with pytest.raises(ValueError):
        make()


def test_builtins_satisfy_the_protocol():
    for authenticator, *_ in CASES.values():
        if not callable(authenticator) or hasattr(authenticator, "authenticate"):
            assert isinstance(authenticator, Authenticator)


def test_object_without_authenticate_is_rejected():
    app = Flask(__name__)
    with pytest.raises(TypeError, match="authenticator"):
        EmailCancel(app, repository=lambda r, p: 0, authenticator=object())  # type: ignore[arg-type]


def test_request_type_is_flask_request():
    seen: list[object] = []

    def authenticate(request: Request) -> None:
        seen.append(request)

    app = Flask(__name__)
    EmailCancel(app, repository=lambda r, p: 0, authenticator=authenticate)
    app.test_client().post("/api/v1/email/1/cancel")
    assert len(seen) == 1 and isinstance(seen[0], Request)
