"""SQLite, file-backed (standard library): one table of key, value, expiry; WAL so readers never wait on a
writer; many processes (BLS instances, the indexing command) may share the file."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from store.base import StoreError

_SCHEMA = "CREATE TABLE IF NOT EXISTS entries (key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)"
_BATCH = 500  # keys per SELECT: SQLite bounds the number of parameters of one statement


class SqliteStore:
    def __init__(self, path: Path, *, timeout_s: float, url: str = "", create: bool = True) -> None:
        """`create=False`: a reader's store, which must exist already (an empty new file would answer "no result"
        to every lookup, hiding a wrong path)."""
        self.url = url or f"sqlite:///{path}"
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise StoreError(f"sqlite store {self.path} does not exist (a reader never creates one)")
        self._lock = threading.Lock()
        try:
            if create:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=max(timeout_s, 0.001), check_same_thread=False,
                                       isolation_level=None)
            # No fsync per write: a store of grades and rankings may lose its last writes to a power cut (they
            # are computed again), never its consistency (WAL).
            self._db.execute("PRAGMA synchronous=NORMAL")
            if create:  # a reader's file is the writer's as it is
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(_SCHEMA)
        except (sqlite3.Error, OSError) as error:
            raise StoreError(f"sqlite store {self.path}: {error}") from None

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        found: dict[str, bytes] = {}
        now = time.time()
        try:
            with self._lock:
                for start in range(0, len(keys), _BATCH):
                    chunk = list(keys[start:start + _BATCH])
                    marks = ",".join("?" * len(chunk))
                    rows = self._db.execute(f"SELECT key, value FROM entries WHERE key IN ({marks}) "
                                            "AND (expires IS NULL OR expires > ?)", (*chunk, now))
                    found.update(rows)
        except sqlite3.Error as error:
            raise StoreError(f"sqlite store {self.path}: {error}") from None
        return [found.get(key) for key in keys]

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        if not items:
            return
        now = time.time()
        rows = [(key, value, now + ttl if ttl else None) for key, value, ttl in items]
        try:
            with self._lock:
                self._db.executemany("INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)", rows)
        except sqlite3.Error as error:
            raise StoreError(f"sqlite store {self.path}: {error}") from None

    def ping(self) -> None:
        try:
            with self._lock:
                self._db.execute("SELECT count(*) FROM entries WHERE 0").fetchall()
        except sqlite3.Error as error:
            raise StoreError(f"sqlite store {self.path}: {error}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()
