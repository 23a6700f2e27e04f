"""Shared, durable data behind one small interface, chosen by URL: cover grades (and, next, rankings).

    redis://host:6379/0          production: every instance and replica reads and writes the same store
    sqlite:///grades.sqlite      embedded, file-backed (relative to a base folder), for one machine
    sqlite:////abs/grades.sqlite

`open_store(url)` gives a `Store`; `store.guarded.GuardedStore` bounds its time and bypasses it while it
fails, so a store is an optimisation, never a dependency of correctness.
"""

from store.base import Store, StoreError, checked_store, open_store, shown_url

__all__ = ["Store", "StoreError", "checked_store", "open_store", "shown_url"]
