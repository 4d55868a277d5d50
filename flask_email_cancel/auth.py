"""Who is calling: the :class:`Principal`, the :class:`Authenticator` protocol
and the authenticators that match what Volt MX's gateway filter accepts.

Every built-in authenticator takes either a ``verify`` callable or a mapping of
credentials. Secrets from a mapping are compared with
:func:`hmac.compare_digest` against every known credential, so neither the
answer nor its timing tells which part of a guess was right.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeAlias, TypeVar, runtime_checkable

from flask import Request

__all__ = [
    "AccessTokenAuth",
    "AnyOf",
    "Authenticator",
    "BasicAuth",
    "BearerAuth",
    "Principal",
    "TokenHeaderAuth",
]


@dataclass(frozen=True)
class Principal:
    """The authenticated caller.

    :param id: who is calling (a user name, client id or token subject).
    :param tenant: the tenant whose queue entries the caller may cancel; a
        repository mapped with a ``tenant`` column touches only rows whose
        tenant equals this value, and none when it is ``None``.
    :param scopes: free-form permissions an authenticator may attach.
    """

    id: str
    tenant: str | None = None
    scopes: frozenset[str] = field(default_factory=frozenset)


@runtime_checkable
class Authenticator(Protocol):
    """Tells who sent a request, or ``None`` when it is not authenticated.

    A plain callable ``(request) -> Principal | None`` is accepted wherever an
    authenticator is. An authenticator may also carry a ``www_authenticate``
    attribute: the ``WWW-Authenticate`` header value sent with its 401s.
    """

    def authenticate(self, request: Request) -> Principal | None:
        """Return the caller of ``request``, or ``None`` to answer 401."""


AuthenticatorLike: TypeAlias = "Authenticator | Callable[[Request], Principal | None]"
"""An :class:`Authenticator` or a plain callable of the same signature."""

_T = TypeVar("_T")


def _encode(secret: str) -> bytes:
    # compare_digest wants bytes for non-ASCII text; surrogateescape keeps
    # undecodable header bytes comparable instead of raising.
    return secret.encode("utf-8", "surrogateescape")


class _SecretTable(Generic[_T]):
    """Credentials looked up by comparing every key in constant time."""

    __slots__ = ("_items",)

    def __init__(self, items: Mapping[str, _T]) -> None:
        if not items:
            raise ValueError("a credentials mapping must not be empty")
        for key in items:
            if not isinstance(key, str) or not key:
                raise ValueError("credential keys must be non-empty strings")
        self._items = [(_encode(key), value) for key, value in items.items()]

    def find(self, secret: str) -> _T | None:
        wanted = _encode(secret)
        found: _T | None = None
        # No early exit: the time taken does not depend on which key matched.
        for key, value in self._items:
            if hmac.compare_digest(key, wanted):
                found = value
        return found


def _principal(value: Principal | str) -> Principal:
    return value if isinstance(value, Principal) else Principal(id=value)


class BasicAuth:
    """HTTP Basic authentication (``Authorization: Basic ...``).

    :param verify: ``verify(username, password) -> Principal | None``, or a
        mapping of user name to password (the principal is then the user name)
        or to a ``(password, Principal)`` pair.
    :param realm: the realm named in ``WWW-Authenticate``.
    """

    def __init__(
        self,
        verify: Callable[[str, str], Principal | None] | Mapping[str, str | tuple[str, Principal]],
        *,
        realm: str = "email-cancel",
    ) -> None:
        if callable(verify):
            self._verify = verify
        else:
            table = _SecretTable(
                {
                    user: (entry, Principal(id=user)) if isinstance(entry, str) else entry
                    for user, entry in verify.items()
                }
            )
            self._verify = lambda user, password: _check_pair(table, user, password)
        self.www_authenticate = f'Basic realm="{realm}", charset="UTF-8"'

    def authenticate(self, request: Request) -> Principal | None:
        """Return the principal for valid Basic credentials, else ``None``."""
        auth = request.authorization
        if auth is None or auth.type != "basic":
            return None
        if auth.username is None or auth.password is None:
            return None
        return self._verify(auth.username, auth.password)


def _check_pair(
    table: _SecretTable[tuple[str, Principal]], name: str, secret: str
) -> Principal | None:
    entry = table.find(name)
    # Compare against a dummy secret for unknown names so that a wrong name and
    # a wrong secret take the same time.
    expected, principal = entry if entry is not None else ("\0", None)
    if hmac.compare_digest(_encode(expected), _encode(secret)) and principal is not None:
        return principal
    return None


class TokenHeaderAuth:
    """A token in a request header, as Volt MX clients send it.

    :param verify: ``verify(token) -> Principal | None``, or a mapping of token
        to :class:`Principal` (or to a principal id).
    :param header: the header carrying the token; Volt MX uses
        ``X-VoltMX-Authorization``.
    """

    www_authenticate: str | None = None

    def __init__(
        self,
        verify: Callable[[str], Principal | None] | Mapping[str, Principal | str],
        *,
        header: str = "X-VoltMX-Authorization",
    ) -> None:
        self._verify = _token_verifier(verify)
        self.header = header

    def authenticate(self, request: Request) -> Principal | None:
        """Return the principal for a known token header, else ``None``."""
        token = request.headers.get(self.header)
        return self._verify(token) if token else None


class BearerAuth:
    """An OAuth 2 bearer token (``Authorization: Bearer ...``).

    :param verify: ``verify(token) -> Principal | None``, or a mapping of token
        to :class:`Principal` (or to a principal id).
    :param realm: the realm named in ``WWW-Authenticate``.
    """

    def __init__(
        self,
        verify: Callable[[str], Principal | None] | Mapping[str, Principal | str],
        *,
        realm: str = "email-cancel",
    ) -> None:
        self._verify = _token_verifier(verify)
        self.www_authenticate = f'Bearer realm="{realm}"'

    def authenticate(self, request: Request) -> Principal | None:
        """Return the principal for a known bearer token, else ``None``."""
        auth = request.authorization
        if auth is None or auth.type != "bearer" or not auth.token:
            return None
        return self._verify(auth.token)


def _token_verifier(
    verify: Callable[[str], Principal | None] | Mapping[str, Principal | str],
) -> Callable[[str], Principal | None]:
    if callable(verify):
        return verify
    table = _SecretTable({token: _principal(value) for token, value in verify.items()})
    return table.find


class AccessTokenAuth:
    """The ``AccessToken`` and ``AccessSecret`` header pair of Volt MX.

    :param verify: ``verify(token, secret) -> Principal | None``, or a mapping of
        access token to its secret (the principal is then the token) or to a
        ``(secret, Principal)`` pair.
    :param token_header: the header carrying the access token.
    :param secret_header: the header carrying the access secret.
    """

    www_authenticate: str | None = None

    def __init__(
        self,
        verify: Callable[[str, str], Principal | None] | Mapping[str, str | tuple[str, Principal]],
        *,
        token_header: str = "AccessToken",
        secret_header: str = "AccessSecret",
    ) -> None:
        if callable(verify):
            self._verify = verify
        else:
            table = _SecretTable(
                {
                    token: (entry, Principal(id=token)) if isinstance(entry, str) else entry
                    for token, entry in verify.items()
                }
            )
            self._verify = lambda token, secret: _check_pair(table, token, secret)
        self.token_header = token_header
        self.secret_header = secret_header

    def authenticate(self, request: Request) -> Principal | None:
        """Return the principal for a valid header pair, else ``None``."""
        token = request.headers.get(self.token_header)
        secret = request.headers.get(self.secret_header)
        if not token or not secret:
            return None
        return self._verify(token, secret)


class AnyOf:
    """Accept a request that any of several authenticators accepts, tried in
    order, as Volt MX's gateway filter accepts any of its schemes.

    Its 401s carry the ``WWW-Authenticate`` challenges of all of them.
    """

    def __init__(self, *authenticators: AuthenticatorLike) -> None:
        if not authenticators:
            raise ValueError("AnyOf needs at least one authenticator")
        #: The authenticators, in the order they are tried.
        self.authenticators: tuple[AuthenticatorLike, ...] = authenticators
        self._authenticate = [as_callable(a) for a in authenticators]
        challenges = [getattr(a, "www_authenticate", None) for a in authenticators]
        self.www_authenticate = ", ".join(c for c in challenges if c) or None

    def authenticate(self, request: Request) -> Principal | None:
        """Return the first principal any authenticator finds, else ``None``."""
        for authenticate in self._authenticate:
            principal = authenticate(request)
            if principal is not None:
                return principal
        return None


def deny_all(request: Request) -> None:
    """The authenticator used when none is configured: nobody gets in."""
    return None


def as_callable(authenticator: AuthenticatorLike) -> Callable[[Request], Principal | None]:
    """Return the bound ``authenticate`` of an authenticator object, or the
    callable itself."""
    method = getattr(authenticator, "authenticate", None)
    if callable(method):
        return method  # type: ignore[no-any-return]
    if callable(authenticator):
        return authenticator
    raise TypeError(
        "authenticator must have an authenticate(request) method or be a callable, "
        f"not {type(authenticator).__name__}"
    )
