"""The shared store's two backends behind one interface, against a real redis-server and a real SQLite file."""

import time

import pytest

from store import StoreError, open_store
from store.guarded import GuardedStore


@pytest.fixture(params=["redis", "sqlite"])
def store(request, tmp_path):
    if request.param == "redis":
        server = request.getfixturevalue("redis_server")
        s = open_store(server.url, timeout_s=0.5)
        s._client.flushdb()
    else:
        s = open_store("sqlite:///grades.sqlite", base=tmp_path)
    yield s
    s.close()


def test_many_keys_in_one_call_none_where_absent(store):
    store.set_many([("a", b"1", None), ("b", b"2", 60.0)])
    assert store.get_many(["a", "missing", "b"]) == [b"1", None, b"2"]
    assert store.get_many([]) == []


def test_entries_expire_after_their_time_to_live(store):
    store.set_many([("short", b"3", 0.2), ("kept", b"4", None)])
    time.sleep(0.35)
    assert store.get_many(["short", "kept"]) == [None, b"4"]


def test_a_write_replaces_the_old_value(store):
    store.set_many([("k", b"1", None)])
    store.set_many([("k", b"2", None)])
    assert store.get_many(["k"]) == [b"2"]


def test_sqlite_relative_and_absolute_paths(tmp_path):
    relative = open_store("sqlite:///sub/g.sqlite", base=tmp_path)
    relative.set_many([("x", b"1", None)])
    assert (tmp_path / "sub" / "g.sqlite").exists()
    absolute = open_store(f"sqlite:///{tmp_path}/sub/g.sqlite")  # the same file: shared by two handles
    assert absolute.get_many(["x"]) == [b"1"]
    with pytest.raises(ValueError, match="store URL must be"):
        open_store("memcached://x")


def test_a_store_that_is_down_raises_store_error_within_its_timeout():
    store = open_store("redis://127.0.0.1:1/0", timeout_s=0.05)  # nothing listens on port 1
    started = time.monotonic()
    with pytest.raises(StoreError):
        store.get_many(["a"])
    assert time.monotonic() - started < 1.0


class Flaky:
    url = "flaky://"

    def __init__(self):
        self.fail = True
        self.calls = 0

    def get_many(self, keys):
        self.calls += 1
        if self.fail:
            raise StoreError("down")
        return [b"1"] * len(keys)

    def set_many(self, items):
        self.calls += 1
        if self.fail:
            raise StoreError("down")


def test_guarded_store_bypasses_a_failing_store_then_tries_again():
    now = [0.0]
    flaky = Flaky()
    guarded = GuardedStore(flaky, retry_after_s=1.0, clock=lambda: now[0])
    assert guarded.get_many(["a"]) is None and flaky.calls == 1
    assert guarded.get_many(["a"]) is None and flaky.calls == 1  # bypassed: no call while it is closed
    assert guarded.set_many([("a", b"1", None)]) is False
    flaky.fail = False
    now[0] = 1.5
    assert guarded.get_many(["a"]) == [b"1"] and guarded.set_many([("a", b"1", None)]) is True
    assert guarded.calls == {("get", "error"): 1, ("get", "bypassed"): 1, ("set", "bypassed"): 1,
                             ("get", "ok"): 1, ("set", "ok"): 1}
