"""Start the real `tritonserver` (from the nvidia-pytriton wheel) on a rendered model repository.

Secure by default: model control off (no dynamic loading), loopback only unless `expose`, strict
readiness, no auto-completed configs, admin endpoints behind a key when one is given, and no request
bodies in the log (verbose logging off).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import tritonclient.grpc as grpcclient
from tritonclient.utils import InferenceServerException

ADMIN_CATEGORIES = "model-repository,model-config,shared-memory,statistics,trace,logging"


class LaunchError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerOptions:
    repository: Path
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002
    expose: bool = False
    """Bind every endpoint to 0.0.0.0 instead of 127.0.0.1."""
    admin_key: str = ""
    """``key=value``: admin gRPC endpoints then need header ``triton-grpc-protocol-<key>: <value>``."""
    exit_timeout_s: int = 30
    """How long SIGTERM waits for in-flight requests."""
    log_file: Path | None = None
    extra_args: tuple[str, ...] = field(default=())
    code_path: tuple[str, ...] = ()
    """Folders the Python stubs import the project's packages from first (A/B benchmarks serve another
    revision's checkout this way); empty: the installed project."""

    @property
    def address(self) -> str:
        return "0.0.0.0" if self.expose else "127.0.0.1"

    @property
    def grpc_url(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        return f"http://127.0.0.1:{self.metrics_port}/metrics"


def pytriton_home() -> Path:
    try:
        import pytriton
    except ImportError as exc:
        raise LaunchError("nvidia-pytriton is not installed: `make test` or `pip install nvidia-pytriton`") from exc
    return Path(pytriton.__file__).parent / "tritonserver"


def provision_backends(dest: Path) -> Path:
    """A backend folder holding the Python backend and the stub built for this interpreter's version."""
    home = pytriton_home()
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    stub = home / "python_backend_stubs" / version / "triton_python_backend_stub"
    if not stub.exists():
        raise LaunchError(f"the pytriton wheel has no Python backend stub for Python {version}")
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for source in (home / "backends" / "python" / "libtriton_python.so",
                   home / "backends" / "python" / "triton_python_backend_utils.py", stub):
        # Copy beside, then rename: a stub still running from an earlier server keeps its (old) file.
        staging = python_dir / f".{source.name}.{os.getpid()}"
        shutil.copy2(source, staging)
        os.replace(staging, python_dir / source.name)
    return dest


def server_environment(code_path: tuple[str, ...] = ()) -> dict[str, str]:
    env = dict(os.environ)
    if code_path:
        env["PYTHONPATH"] = os.pathsep.join([*code_path, env.get("PYTHONPATH", "")]).strip(os.pathsep)
    libs = [sysconfig.get_config_var("LIBDIR"), str(pytriton_home().parent.parent / "nvidia_pytriton.libs")]
    # The running interpreter's libpython must win over the distribution's (mismatched stdlib symbols).
    env["LD_LIBRARY_PATH"] = os.pathsep.join([p for p in libs if p] + [env.get("LD_LIBRARY_PATH", "")]).strip(":")
    # The stub finds its packages through the `python3` first on PATH: this virtual environment's.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    return env


def server_command(options: ServerOptions, backend_dir: Path) -> list[str]:
    address = options.address
    command = [
        str(pytriton_home() / "bin" / "tritonserver"),
        f"--model-repository={options.repository}",
        f"--backend-directory={backend_dir}",
        "--model-control-mode=none",
        "--strict-readiness=true",
        "--disable-auto-complete-config",
        "--exit-on-error=true",
        f"--exit-timeout-secs={options.exit_timeout_s}",
        "--log-verbose=0",
        f"--http-address={address}", f"--http-port={options.http_port}",
        f"--grpc-address={address}", f"--grpc-port={options.grpc_port}",
        f"--metrics-address={address}", f"--metrics-port={options.metrics_port}",
        # Separate shared-memory names per server, so two servers on one host never collide.
        f"--backend-config=python,shm-region-prefix-name=rmr{options.grpc_port}_",
    ]
    if options.admin_key:
        if "=" not in options.admin_key:
            raise LaunchError("admin key must be key=value")
        command.append(f"--grpc-restricted-protocol={ADMIN_CATEGORIES}:{options.admin_key}")
        command.append(f"--http-restricted-api={ADMIN_CATEGORIES}:{options.admin_key}")
    return command + list(options.extra_args)


def process_tree_rss_mb(pid: int) -> dict[str, float]:
    """Resident memory (MB) of a tritonserver process and its model stubs, by model folder name."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
        if int(entry.name) == pid or ppid == pid:
            rss = next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmRSS:")), 0)
            name = "tritonserver" if int(entry.name) == pid else Path(cmdline[1].decode()).parent.parent.name
            out[name] = out.get(name, 0.0) + rss / 1024
    return out


class TritonServer:
    """A tritonserver process: `start()`, `wait_ready()`, `stop()`; also a context manager."""

    def __init__(self, options: ServerOptions, workdir: Path) -> None:
        self.options = options
        self.workdir = workdir
        self.process: subprocess.Popen | None = None
        self.log_path = options.log_file or workdir / "tritonserver.log"

    @classmethod
    def on_free_ports(cls, repository: Path, workdir: Path, **options) -> TritonServer:
        """A server for this process alone: loopback, ports the OS reports free."""
        http, grpc_port, metrics = free_ports(3)
        return cls(ServerOptions(Path(repository).resolve(), http, grpc_port, metrics, **options), workdir)

    def start(self) -> TritonServer:
        self.workdir.mkdir(parents=True, exist_ok=True)
        backends = provision_backends(self.workdir / "backends")
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(server_command(self.options, backends), stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                        env=server_environment(self.options.code_path), start_new_session=True,
                                        # The stubs put their working folder first on sys.path: the checkout's.
                                        cwd=self.options.code_path[0] if self.options.code_path else None)
        return self

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        client = grpcclient.InferenceServerClient(self.options.grpc_url)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is None or self.process.poll() is not None:
                raise LaunchError(f"tritonserver exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            try:
                if client.is_server_ready():
                    return
            except (InferenceServerException, grpc.RpcError):
                pass
            time.sleep(0.5)
        raise LaunchError(f"tritonserver not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> int | None:
        """SIGTERM (Triton drains in-flight requests), then SIGKILL after the exit timeout."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=self.options.exit_timeout_s + 15)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._log.close()
        return self.process.returncode

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def __enter__(self) -> TritonServer:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def free_ports(count: int) -> list[int]:
    """Ports the OS reports free on loopback right now (bind to 0, read back, release)."""
    import socket

    sockets, ports = [], []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sockets.append(sock)
        ports.append(sock.getsockname()[1])
    for sock in sockets:
        sock.close()
    return ports
