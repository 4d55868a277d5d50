"""The ``flask email-cancel`` commands, for operators at a terminal.

:meth:`EmailCancel.init_app <flask_email_cancel.EmailCancel.init_app>` adds the
group to the app's CLI:

``flask email-cancel cancel ID [--tenant T]``
    Cancels through the app's configured repository, with the same semantics
    and messages as the HTTP API, and sends
    :data:`~flask_email_cancel.email_request_cancelled` like the API does. Exit
    status: 0 when entries were cancelled, 1 when none were, 2 on a malformed
    id, 3 when the repository failed, 4 when a sender held the entries past
    the lock timeout (the API's 503: try again later).

``flask email-cancel check``
    Prints the URL prefix, the routes, the authenticator and the repository
    mapping, and warns about what would not work well: no authenticator, or a
    request-id column without an index. Exit status 1 when it warned.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

import click
import sqlalchemy as sa
from flask import current_app
from flask.cli import AppGroup

from .auth import Principal
from .exceptions import (
    EntriesBusy,
    LockTimeout,
    MalformedRequestId,
    NoCancellableMessages,
    ServerFailure,
)
from .schemas import cancelled_message, parse_request_id
from .signals import notify_cancelled
from .sql import SQLAlchemyQueueRepository
from .views import BLUEPRINT_NAME

if TYPE_CHECKING:
    from .extension import EmailCancelState

__all__ = [
    "CLI_PRINCIPAL_ID",
    "EXIT_BUSY",
    "EXIT_FAILURE",
    "EXIT_MALFORMED",
    "EXIT_NOTHING",
    "EXIT_OK",
    "email_cancel_cli",
]

EXIT_OK = 0
"""Exit status of ``cancel`` when it cancelled entries, and of a clean ``check``."""
EXIT_NOTHING = 1
"""Exit status of ``cancel`` when nothing was cancellable, and of a ``check`` that warned."""
EXIT_MALFORMED = 2
"""Exit status of ``cancel`` for a malformed id (click's own usage errors use 2 too)."""
EXIT_FAILURE = 3
"""Exit status of ``cancel`` when the repository raised."""
EXIT_BUSY = 4
"""Exit status of ``cancel`` when a sender held the entries past the lock
timeout: nothing was cancelled, and trying again later may succeed."""

CLI_PRINCIPAL_ID = "cli"
"""The :attr:`Principal.id <flask_email_cancel.Principal.id>` of cancels made
from the command line."""

#: The API's cancel endpoints and the method each serves.
_CANCEL_ROUTES = {
    f"{BLUEPRINT_NAME}.cancel_post": "POST",
    f"{BLUEPRINT_NAME}.cancel_delete": "DELETE",
}
_ROUTES = {**_CANCEL_ROUTES, f"{BLUEPRINT_NAME}.openapi": "GET"}

email_cancel_cli = AppGroup(
    "email-cancel", help="Cancel email requests and check the Cancel Email API's set-up."
)
"""The ``email-cancel`` command group."""


def _state() -> EmailCancelState:
    # Imported here: the extension module imports this one to register the group.
    from .extension import EmailCancel

    return EmailCancel.state(current_app._get_current_object())  # type: ignore[attr-defined]


@email_cancel_cli.command("cancel")
@click.argument("request_id", metavar="ID")
@click.option(
    "--tenant",
    default=None,
    help="Cancel as this tenant (needed when the repository is mapped with a tenant column).",
)
def cancel_command(request_id: str, tenant: str | None) -> None:
    """Cancel the pending, later-scheduled entries of the email request ID."""
    parsed = parse_request_id(request_id)
    if parsed is None:
        click.echo(MalformedRequestId.description, err=True)
        raise click.exceptions.Exit(EXIT_MALFORMED)
    state = _state()
    principal = Principal(id=CLI_PRINCIPAL_ID, tenant=tenant)
    try:
        count = state.cancel(parsed, principal)
    except LockTimeout:
        click.echo(EntriesBusy.description, err=True)
        raise click.exceptions.Exit(EXIT_BUSY) from None
    except Exception as exc:
        current_app.logger.exception("email cancel failed for request %s from the CLI", parsed)
        click.echo(f"{ServerFailure.description}: {type(exc).__name__}: {exc}", err=True)
        raise click.exceptions.Exit(EXIT_FAILURE) from None
    if count <= 0:
        click.echo(NoCancellableMessages.description, err=True)
        raise click.exceptions.Exit(EXIT_NOTHING)
    notify_cancelled(current_app._get_current_object(), parsed, count, principal)  # type: ignore[attr-defined]
    click.echo(cancelled_message(count, parsed))


@email_cancel_cli.command("check")
def check_command() -> None:
    """Print the API's configuration and warn about what would not work well."""
    state = _state()
    warnings: list[str] = []

    click.echo(f"prefix: {state.url_prefix or '/'}")
    routes = sorted(
        (_ROUTES[rule.endpoint], rule.rule)
        for rule in current_app.url_map.iter_rules()
        if rule.endpoint in _ROUTES
    )
    click.echo("routes:")
    for method, rule in routes:
        click.echo(f"  {method} {rule}")
    if not set(_CANCEL_ROUTES.values()) <= {method for method, _ in routes}:
        warnings.append("the cancel routes are not all registered on this app")

    click.echo(f"authenticator: {_describe_authenticator(state.authenticator)}")
    if state.authenticator is None:
        warnings.append("no authenticator configured: every cancel request is answered 401")

    repository = state.repository
    click.echo(f"repository: {_kind(repository)}")
    if isinstance(repository, SQLAlchemyQueueRepository):
        click.echo(f"  table: {repository.table.fullname}")
        for key, value in repository.mapping.items():
            click.echo(f"  {key}: {_value(value)}")
        warning = _index_warning(repository)
        if warning:
            warnings.append(warning)

    for warning in warnings:
        click.echo(f"warning: {warning}", err=True)
    if warnings:
        raise click.exceptions.Exit(EXIT_NOTHING)


def _kind(obj: Any) -> str:
    if inspect.isroutine(obj):
        return f"callable {getattr(obj, '__module__', None) or '?'}.{obj.__qualname__}"
    return type(obj).__name__


def _describe_authenticator(authenticator: Any) -> str:
    if authenticator is None:
        return "none"
    details = [
        f"{attribute}={getattr(authenticator, attribute)}"
        for attribute in ("header", "token_header", "secret_header")
        if isinstance(getattr(authenticator, attribute, None), str)
    ]
    kind = _kind(authenticator)
    return f"{kind} ({', '.join(details)})" if details else kind


def _value(value: Any) -> str:
    if isinstance(value, tuple):
        return ", ".join(repr(v) for v in value)
    return repr(value) if not isinstance(value, bool) else str(value).lower()


def _index_warning(repository: SQLAlchemyQueueRepository) -> str | None:
    """The repository's own index check, or why it could not be made."""
    table = repository.table
    try:
        if not sa.inspect(repository.engine).has_table(table.name, schema=table.schema):
            return f"table {table.fullname!r} does not exist in the database"
        return repository.index_warning()
    except sa.exc.SQLAlchemyError as exc:
        return f"could not inspect table {table.fullname!r}: {exc}"
