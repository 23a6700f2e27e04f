"""`rmr serve` (or `python -m server`): render the repository for a target and serve it in the foreground until Ctrl-C
or SIGTERM, which stop it at any point, start-up included.

Checkpoints come from RERANKER_CKPT, VLM_CKPT and POSTRANK_CKPT (the post-ranker on the re-ranker); the tiny ones
stand in for any not given. Ports come from flags or TRITON_HTTP_PORT / TRITON_GRPC_PORT / TRITON_METRICS_PORT (8000/8001/8002). For replicas
reached over a network: `--tls-cert/--tls-key` (and `--tls-client-ca` for mutual TLS) on gRPC, and
`--inference-key key=value` (or RMR_INFERENCE_KEY) so that only callers holding the key are served.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from server.host.launcher import LaunchError, ServerOptions, ServerTls, TritonServer


def _port(flag_value: int | None, env: str, default: int) -> int:
    return flag_value if flag_value is not None else int(os.environ.get(env, default))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--target", default="cpu", choices=("cpu",),
                        help="GPU targets are served from NVIDIA's container (see docs/deployment.md)")
    parser.add_argument("--repository", help="serve this rendered repository instead of rendering one")
    parser.add_argument("--cache", default=".cache")
    parser.add_argument("--http-port", type=int)
    parser.add_argument("--grpc-port", type=int)
    parser.add_argument("--metrics-port", type=int)
    parser.add_argument("--expose", action="store_true", help="bind 0.0.0.0 instead of loopback")
    parser.add_argument("--admin-key", default=os.environ.get("TRITON_ADMIN_KEY", ""),
                        help="key=value guarding the admin gRPC/HTTP endpoints")
    parser.add_argument("--inference-key", default=os.environ.get("RMR_INFERENCE_KEY", ""),
                        help="key=value every inference call must carry (gRPC header triton-grpc-protocol-<key>); "
                             "or RMR_INFERENCE_KEY")
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate of the gRPC endpoint: TLS on")
    parser.add_argument("--tls-key", type=Path, help="PEM private key of --tls-cert")
    parser.add_argument("--tls-client-ca", type=Path, help="mutual TLS: serve only clients this CA signed")


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cache = Path(args.cache)
    repository = Path(args.repository) if args.repository else None
    if repository is None:
        from build.profile import resolve_checkpoints
        from build.render import render

        ckpts = resolve_checkpoints(os.environ.get("RERANKER_CKPT", ""), os.environ.get("VLM_CKPT", ""), "", str(cache),
                                    os.environ.get("POSTRANK_CKPT", ""))
        repository = render(args.target, cache / f"model_repository-{args.target}", ckpts)
    options = ServerOptions(repository.resolve(), _port(args.http_port, "TRITON_HTTP_PORT", 8000),
                            _port(args.grpc_port, "TRITON_GRPC_PORT", 8001),
                            _port(args.metrics_port, "TRITON_METRICS_PORT", 8002),
                            expose=args.expose, admin_key=args.admin_key, inference_key=args.inference_key,
                            tls=_tls(args))
    server = TritonServer(options, cache / "server")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    signal.signal(signal.SIGINT, lambda signum, frame: stop.set())
    try:
        server.start()
        print(f"starting tritonserver on {options.repository} (log: {server.log_path})", flush=True)
        if server.wait_ready(stop=stop):
            print(f"ready: gRPC {options.address}:{options.grpc_port}{' (TLS)' if options.tls else ''}, HTTP "
                  f"{options.address}:{options.http_port}, metrics {options.address}:{options.metrics_port}. "
                  f"Ctrl-C stops.", flush=True)
            while not stop.is_set() and server.process.poll() is None:
                stop.wait(0.5)
        else:
            print("stopping during start-up", flush=True)
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        server.stop()
        return 1
    code = server.stop()
    print(f"tritonserver stopped (exit code {code})")
    return 0


def _tls(args: argparse.Namespace) -> ServerTls | None:
    if args.tls_cert is None and args.tls_key is None:
        if args.tls_client_ca is not None:
            raise SystemExit("error: --tls-client-ca needs --tls-cert and --tls-key")
        return None
    if args.tls_cert is None or args.tls_key is None:
        raise SystemExit("error: --tls-cert and --tls-key go together")
    return ServerTls(args.tls_cert, args.tls_key, args.tls_client_ca)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmr serve", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
