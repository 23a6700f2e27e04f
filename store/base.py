"""The store interface: many keys in one round trip, values as bytes, an optional time to live per write."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol
from urllib.parse import urlparse


class StoreError(RuntimeError):
    """The store could not answer (down, slow past its timeout, or refused the call)."""


class Store(Protocol):
    url: str

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The value of each key, None where there is none, in one round trip. Raises StoreError."""

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        """(key, value, seconds to live or None for no expiry) for each item, in one round trip. Raises
        StoreError."""

    def ping(self) -> None:
        """One round trip that proves the store answers. Raises StoreError saying why not."""

    def close(self) -> None: ...


def open_store(url: str, *, timeout_s: float = 0.05, base: Path | None = None, create: bool = True) -> Store:
    """The store a URL names; a relative sqlite path is taken from `base` (default: the working folder).
    `create=False` (a reader: `rmr lookup`) refuses a sqlite file that does not exist instead of making an empty
    one. Raises ValueError for a URL of no known scheme, StoreError for a store that cannot be opened."""
    scheme = urlparse(url).scheme
    if scheme in ("redis", "rediss", "unix"):
        from store.redis_store import RedisStore

        return RedisStore(url, timeout_s=timeout_s)
    if scheme == "sqlite":
        from store.sqlite_store import SqliteStore

        path = sqlite_path(url)
        return SqliteStore(path if path.is_absolute() or base is None else base / path, timeout_s=timeout_s, url=url,
                           create=create)
    raise ValueError(f"store URL must be redis://, rediss://, unix:// or sqlite:///, got {url[:80]!r}")


def shown_url(url: str) -> str:
    """The URL for messages and logs: a password in it (redis://:secret@host) is not written out."""
    parsed = urlparse(url)
    if parsed.password is None:
        return url
    return parsed._replace(netloc=f"{parsed.username or ''}:***@{parsed.netloc.rsplit('@', 1)[1]}").geturl()


def checked_store(url: str, *, timeout_s: float, base: Path | None = None, create: bool = True) -> Store:
    """`open_store` and one `ping`, for a command that needs the store before it starts any work: every failure
    is a StoreError that names the URL and the reason."""
    try:
        store = open_store(url, timeout_s=timeout_s, base=base, create=create)
        store.ping()
    except (StoreError, ValueError) as error:
        raise StoreError(f"store {shown_url(url)}: {error}") from None
    return store


def sqlite_path(url: str) -> Path:
    """``sqlite:///a.db`` -> ``a.db`` (relative); ``sqlite:////tmp/a.db`` -> ``/tmp/a.db``."""
    rest = url[len("sqlite:///"):]
    if not url.startswith("sqlite:///") or not rest:
        raise ValueError(f"a sqlite store URL is sqlite:///relative/path or sqlite:////absolute/path, got {url!r}")
    return Path(rest)
