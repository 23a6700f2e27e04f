"""Redis: one pipelined MGET for reads, one pipeline of SETs for writes, a short socket timeout on both."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from store.base import StoreError


class RedisStore:
    def __init__(self, url: str, *, timeout_s: float) -> None:
        self.url = url
        self._client = redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                            retry_on_timeout=False, health_check_interval=0)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        if not keys:
            return []
        try:
            return list(self._client.mget(list(keys)))
        except redis.RedisError as error:
            raise StoreError(f"{type(error).__name__}: {error}") from None

    def set_many(self, items: Sequence[tuple[str, bytes, float | None]]) -> None:
        if not items:
            return
        try:
            pipe = self._client.pipeline(transaction=False)
            for key, value, ttl in items:
                pipe.set(key, value, px=int(ttl * 1000) if ttl else None)
            pipe.execute()
        except redis.RedisError as error:
            raise StoreError(f"{type(error).__name__}: {error}") from None

    def ping(self) -> None:
        try:
            self._client.ping()
        except redis.RedisError as error:
            raise StoreError(f"{type(error).__name__}: {error}") from None

    def close(self) -> None:
        self._client.close()
