"""How the BLS sends its sub-calls (server/stub/bls.py: call_each), with a stand-in for Triton's Python backend
module: a lone sub-call of a lone request is waited for in place, sub-calls that run side by side never are."""

import asyncio
import sys
import types

import pytest

from ensemble.bls.caller import side_by_side


@pytest.fixture
def bls(monkeypatch):
    monkeypatch.setitem(sys.modules, "triton_python_backend_utils", types.ModuleType("triton_python_backend_utils"))
    import server.stub.bls as module

    sent = []

    class Request:
        def __init__(self, model):
            self.model = model

        def exec(self):
            sent.append((self.model, "in place"))

        async def async_exec(self):
            sent.append((self.model, "async"))

    monkeypatch.setattr(module, "_request", lambda model, inputs, outputs: Request(model))
    monkeypatch.setattr(module, "_read", lambda model, response, outputs: {})
    return module, sent


def test_a_lone_sub_call_of_a_lone_request_waits_in_place(bls):
    module, sent = bls

    async def lone():
        with module.waits_in_place(True):
            await module.call_each("reranker_llm", [{}], [])

    asyncio.run(lone())
    assert sent == [("reranker_llm", "in place")]


def test_sub_calls_side_by_side_go_out_together_not_one_after_another(bls):
    """Windows of one wave, or a request's pointwise pairs on both slots: waited for in place, each would hold
    the execution's thread until it answered, and the next would start only then."""
    module, sent = bls

    async def two():
        with module.waits_in_place(True):
            await side_by_side(module.call_each("reranker_llm", [{}], []), module.call_each("cover_vlm", [{}], []))
            await module.call_each("reranker_llm", [{}], [])  # alone again afterwards

    asyncio.run(two())
    assert sent == [("reranker_llm", "async"), ("cover_vlm", "async"), ("reranker_llm", "in place")]
