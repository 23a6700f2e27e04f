"""Options of the load test, kept apart from clients/locustfile.py: importing that file switches gRPC to gevent."""

from __future__ import annotations

import ipaddress
import socket

from ensemble.names import ENTRY_POINTS

MODELS = ENTRY_POINTS


def parse_weights(text: str) -> dict[str, int]:
    weights = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        name, _, value = part.partition("=")
        if name not in MODELS or not value.isdigit():
            raise ValueError(f"--weights takes MODEL=INT with MODEL in {MODELS}, got {part!r}")
        weights[name] = int(value)
    if not any(weights.values()):
        raise ValueError("--weights gives every task weight 0")
    return weights


def require_loopback(host: str) -> str:
    """Load only ever goes to this machine: refuse any other address, of a list (`ip:port,ip:port`) or a name
    (`dns:///name:port`) too. Returns the gRPC target."""
    target = host.strip()
    scheme = next((s for s in ("dns:///", "ipv4:", "ipv6:") if target.startswith(s)), "")
    body = target[len(scheme):] if scheme else target.split("://")[-1]
    for part in body.split(","):
        name = part.strip().rsplit(":", 1)[0].strip("[]")
        try:
            addresses = {info[4][0] for info in socket.getaddrinfo(name, None)}
        except OSError:
            addresses = set()
        if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
            raise ValueError(f"refusing to load {host!r}: the load test only targets loopback addresses")
    return scheme + body


def call_schedule(weights: dict[str, int]) -> list[str]:
    """Weighted round robin: {"a": 2, "b": 1} -> ["a", "b", "a"]. Deterministic, unlike random task picks,
    so a short run still calls every model and two runs send the same mix."""
    rounds = max(weights.values())
    return [name for r in range(rounds) for name, weight in weights.items() if r < weight]


def rerank_options(text: str) -> dict | None:
    """--rerank-options: a JSON object sent as every rich_media_reranker request's options, checked by the
    request schema here so that a typo fails the load test at start, not as thousands of refused calls."""
    import json

    from ensemble.errors import RequestError
    from ensemble.rerank.request import parse_rerank_request

    if not text:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"--rerank-options must be a JSON object ({error.msg})") from None
    probe = json.dumps({"query": "q", "candidates": [{"id": "x", "title": "t"}], "options": options})
    try:
        parse_rerank_request(probe)
    except RequestError as error:
        raise ValueError(f"--rerank-options: {error}") from None
    return options
