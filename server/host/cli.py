"""`rmr serve` (or `python -m server`): render the repository for a target and serve it in the foreground until Ctrl-C.

Ports come from flags or TRITON_HTTP_PORT / TRITON_GRPC_PORT / TRITON_METRICS_PORT (8000/8001/8002).
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import time
from pathlib import Path

from server.host.launcher import LaunchError, ServerOptions, TritonServer


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


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(message)s")

    cache = Path(args.cache)
    repository = Path(args.repository) if args.repository else None
    if repository is None:
        from build.profile import resolve_checkpoints
        from build.render import render

        ckpts = resolve_checkpoints(os.environ.get("RERANKER_CKPT", ""), os.environ.get("VLM_CKPT", ""), "", str(cache))
        repository = render(args.target, cache / f"model_repository-{args.target}", ckpts)
    options = ServerOptions(repository.resolve(), _port(args.http_port, "TRITON_HTTP_PORT", 8000),
                            _port(args.grpc_port, "TRITON_GRPC_PORT", 8001),
                            _port(args.metrics_port, "TRITON_METRICS_PORT", 8002),
                            expose=args.expose, admin_key=args.admin_key)
    server = TritonServer(options, cache / "server")
    stop = {"now": False}

    def _on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    try:
        server.start()
        print(f"starting tritonserver on {options.repository} (log: {server.log_path})", flush=True)
        server.wait_ready()
        print(f"ready: gRPC {options.address}:{options.grpc_port}, HTTP {options.address}:{options.http_port}, "
              f"metrics {options.address}:{options.metrics_port}. Ctrl-C stops.", flush=True)
        while not stop["now"] and server.process.poll() is None:
            time.sleep(0.5)
    except LaunchError as error:
        print(f"error: {error}", file=sys.stderr)
        server.stop()
        return 1
    code = server.stop()
    print(f"tritonserver stopped (exit code {code})")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmr serve", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
