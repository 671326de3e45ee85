"""Store URLs: which store a URL names, checked without importing any client."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

MEMORY = "memory"
_REDIS_SCHEMES = ("redis", "rediss", "unix")
# Query options that carry a credential (redis-py takes `?password=`, `ssl_password=`, ...).
_SECRET_VALUE = re.compile(r"((?:^|&)[^=&#]*(?:pass|secret|token|key)[^=&#]*=)[^&#]*", re.I)
_USERINFO = re.compile(r"(^|/)[^/#]*@")


def check_url(url: str) -> str:
    """`url` if it names a store (`memory`, `redis://`, `rediss://` (TLS) or `unix://`)
    with a host and a port that is a number; else raise `ValueError` saying what is
    accepted (the message shows the URL without its credentials)."""
    if url == MEMORY:
        return url
    parts = urlsplit(url)
    if parts.scheme not in _REDIS_SCHEMES:
        raise ValueError(
            f"a store is 'memory' or a URL redis://host:port/db, rediss://... (TLS) or "
            f"unix://path; got {redacted(url)!r}"
        )
    if parts.scheme != "unix" and not parts.hostname:
        raise ValueError(f"the store URL {redacted(url)!r} names no host")
    try:
        parts.port  # noqa: B018 - urllib checks the port when it is read
    except ValueError:
        raise ValueError(
            f"the store URL {redacted(url)!r} has a port that is not a number from 0 to "
            "65535; write host:6379"
        ) from None
    return url


def redacted(url: str) -> str:
    """`url` without its password (and user) and without the values of query options
    that carry a credential (`?password=`, `ssl_password=`, ...): safe for messages and
    logs, whatever else is wrong with the URL (a typo, a bad port)."""
    head, mark, query = url.partition("?")
    # What precedes an `@` is a user and password, also in a mistyped URL (`redis//:pw@h`)
    head = _USERINFO.sub(r"\1***@", head)
    return head + mark + _SECRET_VALUE.sub(r"\1***", query)
