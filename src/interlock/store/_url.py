"""Store URLs: which store a URL names, checked without importing any client."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MEMORY = "memory"
_REDIS_SCHEMES = ("redis", "rediss", "unix")


def check_url(url: str) -> str:
    """`url` if it names a store (`memory`, `redis://`, `rediss://` (TLS) or `unix://`);
    else raise `ValueError` saying what is accepted."""
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
    return url


def redacted(url: str) -> str:
    """`url` without its password (and user): safe for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None:
        return url
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port is not None else "")
    return urlunsplit(parts._replace(netloc=netloc))
