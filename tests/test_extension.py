"""The extension object: config, keywords, several apps, misuse."""

from __future__ import annotations

import pytest
from flask import Flask

from flask_email_cancel import EmailCancel, EmailCancelState, InMemoryQueueRepository, Principal

from .conftest import later


def allow(request: object) -> Principal:
    return Principal("x")


def test_registers_its_state_and_config_defaults():
    app = Flask(__name__)
    repo = InMemoryQueueRepository()
    ext = EmailCancel(app, repository=repo, authenticator=allow)
    state = app.extensions["email_cancel"]
    assert isinstance(state, EmailCancelState)
    assert state.extension is ext and state.repository is repo
    assert EmailCancel.state(app) is state
    assert app.config["EMAIL_CANCEL_URL_PREFIX"] == "/api/v1/email"
    assert app.config["EMAIL_CANCEL_MAX_BODY_SIZE"] == 65536
    assert not hasattr(ext, "app")


def test_config_prefix_is_used_and_keyword_wins():
    from_config = Flask(__name__)
    from_config.config["EMAIL_CANCEL_URL_PREFIX"] = "/mail/"
    EmailCancel(from_config, repository=lambda r, p: 1, authenticator=allow)
    assert from_config.test_client().post("/mail/1/cancel").status_code == 200
    assert from_config.test_client().post("/api/v1/email/1/cancel").status_code == 404

    keyword = Flask(__name__)
    keyword.config["EMAIL_CANCEL_URL_PREFIX"] = "/mail"
    EmailCancel(keyword, repository=lambda r, p: 1, authenticator=allow, url_prefix="/v2/email")
    assert keyword.test_client().delete("/v2/email/1").status_code == 200
    assert keyword.test_client().delete("/mail/1").status_code == 404


def test_init_app_keywords_win_over_constructor_keywords():
    ext = EmailCancel(repository=lambda r, p: 0, authenticator=allow, url_prefix="/a")
    app = Flask(__name__)
    ext.init_app(app, repository=lambda r, p: 2)
    response = app.test_client().post("/a/1/cancel")
    assert response.get_json()["count"] == 2


def test_one_extension_serves_several_apps():
    ext = EmailCancel(authenticator=allow)
    repos = [InMemoryQueueRepository(), InMemoryQueueRepository()]
    apps = [Flask(f"app{n}") for n in range(2)]
    ext.init_app(apps[0], repository=repos[0])
    ext.init_app(apps[1], repository=repos[1], url_prefix="/other")
    repos[0].add(1, later(10**9))
    repos[1].add(1, later(10**9))
    repos[1].add(1, later(10**9))
    assert apps[0].test_client().post("/api/v1/email/1/cancel").get_json()["count"] == 1
    assert apps[1].test_client().post("/api/v1/email/1/cancel").status_code == 404
    assert apps[1].test_client().post("/other/1/cancel").get_json()["count"] == 2
    assert EmailCancel.state(apps[0]).extension is EmailCancel.state(apps[1]).extension


def test_second_init_app_on_the_same_app_is_an_error():
    app = Flask(__name__)
    ext = EmailCancel(app, repository=lambda r, p: 0, authenticator=allow)
    with pytest.raises(RuntimeError, match="already registered"):
        ext.init_app(app)
    with pytest.raises(RuntimeError, match="already registered"):
        EmailCancel(app, repository=lambda r, p: 0, authenticator=allow)


def test_repository_is_required():
    with pytest.raises(TypeError, match="repository"):
        EmailCancel(Flask(__name__), authenticator=allow)


@pytest.mark.parametrize("repository", [object(), "not a repository"])
def test_unusable_repository_is_rejected(repository):
    with pytest.raises(TypeError, match="repository"):
        EmailCancel(Flask(__name__), repository=repository, authenticator=allow)


@pytest.mark.parametrize("prefix", ["api", "/api/<int:x>", 5, "/", ""])
def test_bad_prefix_is_rejected(prefix):
    with pytest.raises(ValueError, match="EMAIL_CANCEL_URL_PREFIX"):
        EmailCancel(
            Flask(__name__), repository=lambda r, p: 0, authenticator=allow, url_prefix=prefix
        )


@pytest.mark.parametrize("size", [-1, "big", True])
def test_bad_body_size_is_rejected(size):
    app = Flask(__name__)
    app.config["EMAIL_CANCEL_MAX_BODY_SIZE"] = size
    with pytest.raises(ValueError, match="EMAIL_CANCEL_MAX_BODY_SIZE"):
        EmailCancel(app, repository=lambda r, p: 0, authenticator=allow)


def test_state_of_an_app_without_the_extension_is_an_error():
    with pytest.raises(RuntimeError, match="not registered"):
        EmailCancel.state(Flask(__name__))


def test_repository_object_is_used_through_its_cancel_method():
    class Repo:
        def cancel(self, request_id: int, principal: Principal) -> int:
            return 3 if request_id == 9 else 0

    app = Flask(__name__)
    EmailCancel(app, repository=Repo(), authenticator=allow)
    client = app.test_client()
    assert client.post("/api/v1/email/9/cancel").get_json()["count"] == 3
    assert client.post("/api/v1/email/8/cancel").status_code == 400


def test_openapi_url_keyword_wins_over_config():
    app = Flask(__name__)
    app.config["EMAIL_CANCEL_OPENAPI_URL"] = "/from-config.json"
    EmailCancel(app, repository=lambda r, p: 0, authenticator=allow, openapi_url="/spec.json")
    client = app.test_client()
    assert client.get("/api/v1/email/spec.json").get_json()["openapi"].startswith("3.1")
    # Not the document: the DELETE route's "id", which answers GET with 405.
    assert client.get("/api/v1/email/from-config.json").status_code == 405
