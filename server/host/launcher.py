"""Start the real `tritonserver` (from the nvidia-pytriton wheel) on a rendered model repository.

Secure by default: model control off (no dynamic loading), loopback only unless `expose`, strict
readiness, no auto-completed configs, admin endpoints behind a key when one is given, and no request
bodies in the log (verbose logging off). Where replicas are reached over a network: TLS on gRPC (mutual when a
client CA is given) and inference behind a key of its own (Triton's restricted `inference` protocol).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import urllib.error
import urllib.request

ADMIN_CATEGORIES = "model-repository,model-config,shared-memory,statistics,trace,logging"
INFERENCE_CATEGORIES = "inference"
"""Behind the inference key. Health stays open (probes, load balancers); metadata too (it names models and
tensors, no data)."""


@dataclass(frozen=True)
class ServerTls:
    """PEM files of the gRPC endpoint's TLS (Triton's --grpc-use-ssl and its certificate flags)."""

    cert: Path
    key: Path
    client_ca: Path | None = None
    """Mutual TLS: only clients with a certificate this CA signed are served."""

    def arguments(self, check: bool = True) -> list[str]:
        """Triton's flags; `check`: the files must exist here (not where they are a Secret mounted in a pod)."""
        for name in ("cert", "key", "client_ca"):
            path = getattr(self, name)
            if check and path is not None and not Path(path).is_file():
                raise LaunchError(f"TLS {name.replace('_', ' ')}: no such file {path}")
        arguments = ["--grpc-use-ssl=true", f"--grpc-server-cert={self.cert}", f"--grpc-server-key={self.key}"]
        if self.client_ca is not None:
            arguments += ["--grpc-use-ssl-mutual=true", f"--grpc-root-cert={self.client_ca}"]
        return arguments


def restricted_arguments(categories: str, key: str, what: str = "key", check: bool = True) -> list[str]:
    """Triton's flags putting `categories` behind `key` (``key=value``) on gRPC and HTTP alike. `check`: `key` is
    the key itself (not a reference a pod expands, such as ``$(RMR_INFERENCE_KEY)``)."""
    name, sep, value = key.partition("=")
    if check and (not sep or not name or not value):
        raise LaunchError(f"{what} must be key=value")
    return [f"--grpc-restricted-protocol={categories}:{key}", f"--http-restricted-api={categories}:{key}"]


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
    inference_key: str = ""
    """``key=value``: inference (gRPC and HTTP) then needs header ``triton-grpc-protocol-<key>: <value>`` over
    gRPC, ``<key>: <value>`` over HTTP."""
    tls: ServerTls | None = None
    exit_timeout_s: int = 30
    """How long SIGTERM waits for in-flight requests."""
    log_file: Path | None = None
    models: tuple[str, ...] = ()
    """Serve only these models of the repository (and what they need), loaded at start (Triton's explicit model
    control, its load API behind the admin key): tests and benchmarks of many replicas run lean ones. Empty: all,
    with model control off."""
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
        *(["--model-control-mode=explicit", *(f"--load-model={m}" for m in options.models)] if options.models
          else ["--model-control-mode=none"]),
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
    for categories, key, what in ((ADMIN_CATEGORIES, options.admin_key, "admin key"),
                                  (INFERENCE_CATEGORIES, options.inference_key, "inference key")):
        if key:
            command += restricted_arguments(categories, key, what)
    if options.tls is not None:
        command += options.tls.arguments()
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
        self.ready = False
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

    def is_ready(self) -> bool:
        """Triton's readiness over loopback HTTP (health is never behind a key, and this needs no TLS client)."""
        url = f"http://127.0.0.1:{self.options.http_port}/v2/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def wait_ready(self, timeout_s: float = 300.0, stop: threading.Event | None = None) -> bool:
        """True once ready; False as soon as `stop` is set (a signal during start-up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if stop is not None and stop.is_set():
                return False
            if self.process is None or self.process.poll() is not None:
                raise LaunchError(f"tritonserver exited during start-up; see {self.log_path}:\n{self.log_tail()}")
            if self.is_ready():
                self.ready = True
                return True
            (stop or threading.Event()).wait(0.5)
        raise LaunchError(f"tritonserver not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> int | None:
        """Ready: SIGTERM (Triton finishes the requests in flight, new ones get UNAVAILABLE), then SIGKILL after
        the exit timeout. Still starting: nothing is in flight and Triton reads SIGTERM only once its models have
        loaded (minutes with real engines), so the whole process group, model stubs included, is killed at once."""
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        if self.ready:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.options.exit_timeout_s + 15)
            except subprocess.TimeoutExpired:
                pass
        self._kill_group()
        self._log.close()
        return self.process.returncode

    def _kill_group(self) -> None:
        """Whatever is left of the server's process group (start_new_session: tritonserver and its stubs)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()

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
