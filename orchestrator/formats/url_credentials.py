"""Credentials in a cache or Hydra URL (``http://user:pass@host/``): sent as HTTP basic auth,
never shown. Every URL that reaches a message, a log, ``--json`` or the results file is the
redacted one (``user:***@``); the password lives only in the ``Authorization`` header."""

from __future__ import annotations

import base64
from typing import NamedTuple
from urllib.parse import unquote, urlsplit, urlunsplit


class SplitUrl(NamedTuple):
    bare: str  # the URL without user info: what is connected to and sent as Host
    shown: str  # the URL with the password replaced by ***: what is printed
    auth: tuple[str, str] | None  # (user, password), percent-decoded, when the URL has a user


def split_url(url: str) -> SplitUrl:
    try:
        parts = urlsplit(url)
        user, password = parts.username, parts.password
        host = parts.hostname
        port = parts.port
    except ValueError:  # an out-of-range port, a malformed IPv6 literal: nothing to hide left
        return SplitUrl(url, redact(url), None)
    if user is None and "@" not in parts.netloc:
        return SplitUrl(url, url, None)
    hostport = (f"[{host}]" if host and ":" in host else host or "") + (
        f":{port}" if port is not None else ""
    )
    bare = urlunsplit(parts._replace(netloc=hostport))
    shown_user = f"{user}:***@" if password is not None else f"{user}@"
    shown = urlunsplit(parts._replace(netloc=shown_user + hostport))
    return SplitUrl(bare, shown, (unquote(user or ""), unquote(password or "")))


def redact(url: str) -> str:
    """``url`` with any password replaced by ``***`` (the user name is kept: it says which
    account, and is no secret)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    netloc, slash, path = rest.partition("/")
    userinfo, at, hostport = netloc.rpartition("@")
    if not at:
        return url
    user = userinfo.split(":", 1)[0]
    shown = f"{user}:***" if ":" in userinfo else user
    return f"{scheme}://{shown}@{hostport}{slash}{path}"


def basic_auth_header(auth: tuple[str, str]) -> str:
    token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode("ascii")
    return f"Basic {token}"
