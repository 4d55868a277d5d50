"""The :class:`EmailCancel` extension."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask, Request
from marshmallow import Schema

from .auth import AuthenticatorLike, Principal, deny_all
from .auth import as_callable as authenticator_callable
from .cli import email_cancel_cli
from .repository import QueueRepositoryLike
from .repository import as_callable as repository_callable
from .schemas import CancelBodySchema, CancelResponseSchema, ErrorSchema
from .views import create_blueprint

__all__ = ["EXTENSION_KEY", "EmailCancel", "EmailCancelState"]

EXTENSION_KEY = "email_cancel"
"""The key of the extension's state in ``app.extensions``."""

_UNSET: Any = object()

#: Config keys and their defaults, set with ``app.config.setdefault``.
DEFAULTS: dict[str, Any] = {
    "EMAIL_CANCEL_URL_PREFIX": "/api/v1/email",
    "EMAIL_CANCEL_MAX_BODY_SIZE": 64 * 1024,
    "EMAIL_CANCEL_OPENAPI_URL": None,
}


@dataclass(frozen=True)
class EmailCancelState:
    """What :meth:`EmailCancel.init_app` configured for one app, kept in
    ``app.extensions["email_cancel"]``."""

    #: The extension object that registered this state.
    extension: EmailCancel
    #: Where the routes are mounted, without a trailing slash.
    url_prefix: str
    #: The repository as given.
    repository: QueueRepositoryLike
    #: The authenticator as given; ``None`` when every request is denied.
    authenticator: AuthenticatorLike | None
    #: ``repository``'s ``cancel``, or the repository itself when a callable.
    cancel: Callable[[int, Principal], int]
    #: ``authenticator``'s ``authenticate``, or a function denying everyone.
    authenticate: Callable[[Request], Principal | None]
    #: The ``WWW-Authenticate`` value sent with 401s, if the scheme has one.
    www_authenticate: str | None
    #: The largest request body read, in bytes.
    max_body_size: int
    #: Dumps the 200 body.
    response_schema: Schema
    #: Dumps every error body.
    error_schema: Schema
    #: Loads the optional request body.
    body_schema: Schema
    #: Where the OpenAPI document is served under the prefix; ``None``: not served.
    openapi_url: str | None = None


def _prefix(value: Any) -> str:
    # The blueprint answers every path under its prefix; at the root it would
    # take over the host's own 404 and 405 pages.
    if not isinstance(value, str) or not value.startswith("/") or not value.strip("/"):
        raise ValueError(
            f"EMAIL_CANCEL_URL_PREFIX must be a path below the root such as "
            f"'/api/v1/email', not {value!r}"
        )
    if "<" in value or ">" in value:
        raise ValueError("EMAIL_CANCEL_URL_PREFIX must not contain URL variables")
    return value.rstrip("/")


def _openapi_url(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
        raise ValueError(
            f"EMAIL_CANCEL_OPENAPI_URL must be None or a path like '/openapi.json', not {value!r}"
        )
    if "<" in value:
        raise ValueError("EMAIL_CANCEL_OPENAPI_URL must not contain URL variables")
    return value


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"EMAIL_CANCEL_MAX_BODY_SIZE must be a non-negative int, not {value!r}")
    return value


class EmailCancel:
    """The Cancel Email API as a Flask extension.

    ``EmailCancel(app, **options)`` or ``EmailCancel(**options)`` then
    ``init_app(app, **options)``; options given to ``init_app`` win over those
    given here, and both win over the app's ``EMAIL_CANCEL_`` config. One
    object serves any number of apps; per-app state lives in
    ``app.extensions["email_cancel"]``.

    :param repository: the :class:`~flask_email_cancel.QueueRepository` that
        cancels entries, or a callable ``(request_id, principal) -> int``.
        Required.
    :param authenticator: the :class:`~flask_email_cancel.Authenticator`, or a
        callable ``(request) -> Principal | None``. Without one every request
        is answered 401 and a warning is logged: nothing is open by default.
    :param url_prefix: where the routes are mounted; overrides
        ``EMAIL_CANCEL_URL_PREFIX``.
    :param max_body_size: the largest request body read, in bytes; overrides
        ``EMAIL_CANCEL_MAX_BODY_SIZE``.
    :param openapi_url: serve the OpenAPI document at this path under the
        prefix; overrides ``EMAIL_CANCEL_OPENAPI_URL``.
    :param response_schema: replaces :class:`~flask_email_cancel.schemas.CancelResponseSchema`.
    :param error_schema: replaces :class:`~flask_email_cancel.schemas.ErrorSchema`.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        repository: QueueRepositoryLike | None = None,
        authenticator: AuthenticatorLike | None = None,
        url_prefix: str | None = None,
        max_body_size: int | None = None,
        openapi_url: str | None = None,
        response_schema: Schema | None = None,
        error_schema: Schema | None = None,
    ) -> None:
        self._options: dict[str, Any] = {
            "repository": repository,
            "authenticator": authenticator,
            "url_prefix": url_prefix,
            "max_body_size": max_body_size,
            "openapi_url": openapi_url,
            "response_schema": response_schema,
            "error_schema": error_schema,
        }
        if app is not None:
            self.init_app(app)

    def init_app(
        self,
        app: Flask,
        *,
        repository: QueueRepositoryLike | None = None,
        authenticator: AuthenticatorLike | None = None,
        url_prefix: str | None = None,
        max_body_size: int | None = None,
        openapi_url: str | None = None,
        response_schema: Schema | None = None,
        error_schema: Schema | None = None,
    ) -> None:
        """Mount the API on ``app``.

        :raises RuntimeError: when ``app`` already has an ``EmailCancel``.
        :raises TypeError: when no repository is given.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask-email-cancel is already registered on this app; call init_app once per app"
            )
        given: dict[str, Any] = {
            "repository": repository,
            "authenticator": authenticator,
            "url_prefix": url_prefix,
            "max_body_size": max_body_size,
            "openapi_url": openapi_url,
            "response_schema": response_schema,
            "error_schema": error_schema,
        }
        options = {k: v if v is not None else self._options[k] for k, v in given.items()}
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)

        def setting(name: str) -> Any:
            # A keyword wins over the app's config key of the same name.
            value = options[name]
            return value if value is not None else app.config[f"EMAIL_CANCEL_{name.upper()}"]

        if options["repository"] is None:
            raise TypeError("EmailCancel needs repository=, the queue repository that cancels")
        authenticator_ = options["authenticator"]
        if authenticator_ is None:
            app.logger.warning(
                "flask-email-cancel: no authenticator configured; "
                "every cancel request will be answered 401"
            )
        state = EmailCancelState(
            extension=self,
            url_prefix=_prefix(setting("url_prefix")),
            repository=options["repository"],
            authenticator=authenticator_,
            cancel=repository_callable(options["repository"]),
            authenticate=authenticator_callable(authenticator_) if authenticator_ else deny_all,
            www_authenticate=getattr(authenticator_, "www_authenticate", None),
            max_body_size=_size(setting("max_body_size")),
            response_schema=options["response_schema"] or CancelResponseSchema(),
            error_schema=options["error_schema"] or ErrorSchema(),
            body_schema=CancelBodySchema(),
            openapi_url=_openapi_url(setting("openapi_url")),
        )
        app.register_blueprint(create_blueprint(state))
        app.cli.add_command(email_cancel_cli)
        app.extensions[EXTENSION_KEY] = state
        # A repository may check its tables at start-up (the SQL one warns
        # when the request-id column has no index).
        check = getattr(state.repository, "init_app", None)
        if callable(check):
            check(app)

    def openapi_spec(self, app: Flask) -> dict[str, Any]:
        """The OpenAPI 3.1 document of the API as mounted on ``app``, a new
        dict (see :func:`flask_email_cancel.openapi.build_spec`).

        :raises RuntimeError: when the extension is not registered on ``app``.
        :raises ImportError: when apispec (the ``openapi`` extra) is missing.
        """
        from .openapi import build_spec

        return build_spec(self.state(app))

    @staticmethod
    def state(app: Flask) -> EmailCancelState:
        """The state :meth:`init_app` configured for ``app``.

        :raises RuntimeError: when the extension is not registered on ``app``.
        """
        try:
            return app.extensions[EXTENSION_KEY]  # type: ignore[no-any-return]
        except KeyError:
            raise RuntimeError("flask-email-cancel is not registered on this app") from None
