"""The BLS's counters are published once per interval, however many requests changed them, and never lost."""

import asyncio

from server.stub.metrics import DeferredPublish


def test_changes_within_an_interval_publish_once_and_later_changes_publish_again():
    published = []

    async def serve():
        loop = asyncio.get_running_loop()
        deferred = DeferredPublish(lambda: published.append(loop.time()), interval=0.05)
        started = loop.time()
        for _ in range(5):  # five requests in a burst
            deferred.changed()
            await asyncio.sleep(0.001)
        await asyncio.sleep(0.1)
        assert len(published) == 1 and published[0] - started >= 0.05
        deferred.changed()  # a request after the flush: published again, with no further request
        await asyncio.sleep(0.1)
        return started

    asyncio.run(serve())
    assert len(published) == 2


def test_a_failing_publish_does_not_stop_later_ones():
    calls = []

    def publish():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("server busy")

    async def serve():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: None)
        deferred = DeferredPublish(publish, interval=0.01)
        deferred.changed()
        await asyncio.sleep(0.05)
        deferred.changed()
        await asyncio.sleep(0.05)

    asyncio.run(serve())
    assert len(calls) == 2
