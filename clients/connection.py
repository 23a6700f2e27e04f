"""How a client reaches the deployment: which replicas, how calls are spread and retried, TLS and the inference key,
all in gRPC's and Triton's own terms, so that a backend in any language can do the same (README: Connecting).

    Connection("dns:///rmr-grpc-headless.search.svc.cluster.local:8001", ca="ca.pem",
               inference_key="rmr-inference=s3cret")
    Connection("127.0.0.1:8001,127.0.0.1:8011")        # a static list of replicas

- Balancing: gRPC's `round_robin` policy over every address the target resolves to (a DNS name's A records, or the
  list), one connection each: each call goes to the next ready replica, where kube-proxy would pin a connection.
- Retries: gRPC's `retryPolicy` in the channel's service config, for UNAVAILABLE (a replica that is down,
  unreachable or refusing new calls as it stops) and NOT_FOUND (a stopping Triton unloads its models first, and
  answers a call that comes meanwhile "unknown model"; every replica serves every entry point, so elsewhere it is
  found), bounded attempts with exponential backoff; gRPC sends the next attempt to the next replica. Every entry
  point is idempotent. Hedging is off: each attempt on an LLM costs a GPU's time.
- TLS: the CA that signed the servers' certificates (`ca`); a client certificate and key where the servers ask for
  one (mutual TLS). `server_name` checks the certificates against that name when the target names addresses.
- Inference key: Triton's restricted `inference` protocol (`rmr serve --inference-key key=value`); every call
  carries the header `triton-grpc-protocol-<key>: <value>`.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

GRPC_SERVICE = "inference.GRPCInferenceService"
RETRYABLE = ("UNAVAILABLE", "NOT_FOUND")
MAX_ATTEMPTS_LIMIT = 5
"""gRPC caps a retry policy's maxAttempts at 5 (attempts above are lowered to it)."""
RETRY_BUFFER_BYTES = 64 * 1024 * 1024
"""A call is retried only while its request is held whole; gRPC's default buffer (256 KiB) is smaller than a request
with its cover images, which would then fail over instead of moving to another replica."""
INFERENCE_KEY_ENV = "RMR_INFERENCE_KEY"
KEY_HEADER_PREFIX = "triton-grpc-protocol-"
"""Triton reads a restricted protocol's key from this header prefix plus the key's name (src/restricted_features.h)."""
_INT32_MAX = 2 ** 31 - 1


class ConnectionOptionError(ValueError):
    """An option of the connection that cannot work, named."""


def header_for(key: str) -> tuple[str, str]:
    """``"name=value"`` -> the gRPC header Triton checks for a restricted protocol."""
    name, sep, value = key.partition("=")
    if not sep or not name or not value:
        raise ConnectionOptionError("inference key must be key=value (e.g. rmr-inference=s3cret)")
    return f"{KEY_HEADER_PREFIX}{name.lower()}", value


def grpc_target(url: str) -> str:
    """A target gRPC's resolvers read: ``dns:///…`` and other schemes pass; ``host:port`` passes; a comma list of
    ``ip:port`` becomes ``ipv4:``/``ipv6:`` (gRPC's static-list resolvers). A list of names has no gRPC form."""
    url = url.strip()
    if "://" in url or url.startswith(("ipv4:", "ipv6:", "unix:")):
        return url
    parts = [p.strip() for p in url.split(",") if p.strip()]
    if not parts:
        raise ConnectionOptionError("url is empty: give host:port, a list of ip:port, or dns:///name:port")
    if len(parts) == 1:
        return parts[0]
    families = set()
    for part in parts:
        host = part.rsplit(":", 1)[0].strip("[]")
        try:
            families.add(ipaddress.ip_address(host).version)
        except ValueError:
            raise ConnectionOptionError(f"url: {part!r} in a list must be an IP address and port; for a name that "
                                  f"resolves to the replicas use dns:///{part}") from None
    if len(families) > 1:
        raise ConnectionOptionError("url: a list mixes IPv4 and IPv6 addresses")
    return f"ipv{families.pop()}:{','.join(parts)}"


@dataclass(frozen=True)
class Connection:
    url: str = "localhost:8001"
    attempts: int = 5
    """Attempts per call (gRPC caps it at 5); 1 turns retries off."""
    initial_backoff_s: float = 0.2
    max_backoff_s: float = 2.0
    """gRPC waits a random time up to the backoff before each retry; from 0.2 s, doubling, four retries span about
    the 2-3 s a stopping Triton answers NOT_FOUND before its port closes (bench.fleet)."""
    ca: str | None = None
    """PEM file of the CA that signed the servers' certificates: TLS on."""
    client_cert: str | None = None
    client_key: str | None = None
    server_name: str | None = None
    """Name the servers' certificates are checked against. Default: the target's host; for a list of addresses,
    the first one's (a list has no host of its own, so give the name the certificates carry)."""
    inference_key: str | None = None
    """``key=value`` of the server's restricted `inference` protocol."""

    def __post_init__(self) -> None:
        grpc_target(self.url)
        if not 1 <= self.attempts <= MAX_ATTEMPTS_LIMIT:
            raise ConnectionOptionError(f"attempts must be 1..{MAX_ATTEMPTS_LIMIT} (gRPC's limit), got {self.attempts}")
        if self.initial_backoff_s <= 0 or self.max_backoff_s < self.initial_backoff_s:
            raise ConnectionOptionError("backoff: need 0 < initial_backoff_s <= max_backoff_s")
        if (self.client_cert is None) != (self.client_key is None):
            raise ConnectionOptionError("client_cert and client_key go together (mutual TLS)")
        if self.client_cert and not self.ca:
            raise ConnectionOptionError("client_cert needs ca: mutual TLS is TLS first")
        for name in ("ca", "client_cert", "client_key"):
            path = getattr(self, name)
            if path and not Path(path).is_file():
                raise ConnectionOptionError(f"{name}: no such file {path}")
        if self.inference_key is not None:
            header_for(self.inference_key)

    @property
    def target(self) -> str:
        return grpc_target(self.url)

    @property
    def tls(self) -> bool:
        return self.ca is not None

    def service_config(self) -> dict[str, Any]:
        """gRPC's service config (doc/service_config.md, A6 retry design): round_robin, retries on UNAVAILABLE."""
        config: dict[str, Any] = {"loadBalancingConfig": [{"round_robin": {}}]}
        if self.attempts > 1:
            config["methodConfig"] = [{
                "name": [{"service": GRPC_SERVICE}],
                "retryPolicy": {"maxAttempts": self.attempts, "initialBackoff": f"{self.initial_backoff_s:g}s",
                                "maxBackoff": f"{self.max_backoff_s:g}s", "backoffMultiplier": 2,
                                "retryableStatusCodes": list(RETRYABLE)}}]
        return config

    def channel_args(self) -> list[tuple[str, Any]]:
        """tritonclient's own defaults (unbounded message sizes, its keepalive) plus the service config; given
        channel_args, tritonclient uses these alone."""
        args: list[tuple[str, Any]] = [
            ("grpc.max_send_message_length", _INT32_MAX), ("grpc.max_receive_message_length", _INT32_MAX),
            ("grpc.keepalive_time_ms", _INT32_MAX), ("grpc.keepalive_timeout_ms", 20000),
            ("grpc.keepalive_permit_without_calls", 0), ("grpc.http2.max_pings_without_data", 2),
            ("grpc.service_config", json.dumps(self.service_config())),
            ("grpc.enable_retries", 1 if self.attempts > 1 else 0),
            ("grpc.per_rpc_retry_buffer_size", RETRY_BUFFER_BYTES), ("grpc.retry_buffer_size", RETRY_BUFFER_BYTES),
            # A replica that went away is tried again soon: a restarted one gets its share back within ~1 s.
            ("grpc.initial_reconnect_backoff_ms", 200), ("grpc.max_reconnect_backoff_ms", 1000),
            ("grpc.min_reconnect_backoff_ms", 200),
        ]
        name = self.server_name or (self._first_host() if self.tls else None)
        if name:
            args.append(("grpc.ssl_target_name_override", name))
        return args

    def _first_host(self) -> str | None:
        """The first address's host, where the target is a list (ipv4:/ipv6:)."""
        target = self.target
        if not target.startswith(("ipv4:", "ipv6:")):
            return None
        first = target.split(":", 1)[1].split(",")[0]
        return first.rsplit(":", 1)[0].strip("[]")

    def headers(self) -> dict[str, str]:
        if not self.inference_key:
            return {}
        name, value = header_for(self.inference_key)
        return {name: value}

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of tritonclient's `InferenceServerClient` (grpc and grpc.aio)."""
        kwargs: dict[str, Any] = {"url": self.target, "channel_args": self.channel_args()}
        if self.tls:
            kwargs |= {"ssl": True, "root_certificates": self.ca, "private_key": self.client_key,
                       "certificate_chain": self.client_cert}
        return kwargs


def as_connection(target: str | Connection) -> Connection:
    return target if isinstance(target, Connection) else Connection(target)


def add_connection_arguments(parser: argparse.ArgumentParser, *, url_flag: str = "--url",
                             url_default: str | None = "localhost:8001") -> None:
    """The same connection flags on every client command (`rmr` subcommands, `rmr eval`, `rmr covers`, `rmr batch`,
    locust)."""
    group = parser.add_argument_group("connection")
    if url_flag:
        group.add_argument(url_flag, default=url_default, required=url_default is None,
                           help="host:port, ip:port[,ip:port...] or dns:///name:port; calls are balanced "
                                "round-robin over every address")
    group.add_argument("--retries", type=int, default=Connection.attempts - 1,
                       help=f"retries of a call a replica answered UNAVAILABLE or NOT_FOUND, on the next replica (0..{MAX_ATTEMPTS_LIMIT - 1})")
    group.add_argument("--ca", help="PEM CA of the servers' certificates: TLS")
    group.add_argument("--client-cert", help="PEM client certificate (mutual TLS)")
    group.add_argument("--client-key", help="PEM client key (mutual TLS)")
    group.add_argument("--server-name", help="name the servers' certificates carry, where the url gives addresses")
    group.add_argument("--inference-key", default=os.environ.get(INFERENCE_KEY_ENV) or None,
                       help=f"key=value of the servers' inference key (or ${INFERENCE_KEY_ENV})")


def connection_from_args(args: argparse.Namespace, url: str | None = None) -> Connection:
    """The connection the flags describe; a bad flag exits naming it (argparse's way)."""
    try:
        return Connection(url if url is not None else args.url, attempts=args.retries + 1, ca=args.ca,
                          client_cert=args.client_cert, client_key=args.client_key, server_name=args.server_name,
                          inference_key=args.inference_key)
    except ConnectionOptionError as error:
        raise SystemExit(f"error: {error}") from None


class _ClosedChannel:
    def close(self) -> None:
        pass


def close_once(client: Any) -> None:
    """Close a tritonclient gRPC client so that its `__del__` cannot close the channel a second time.

    Each close of a gRPC channel under gevent (locust) also lowers gRPC's count of open channels; a second
    close by the garbage collector lowers it again, and gRPC then stops serving the other users' channels:
    the load test hung (seen at 2 users, stack in Channel._close under gc). Idempotent."""
    if isinstance(client._channel, _ClosedChannel):
        return
    client.close()
    client._channel = _ClosedChannel()
