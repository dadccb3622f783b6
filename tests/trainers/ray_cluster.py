"""A real single-node Ray cluster for tests: ``ray start --head --block`` as a child process.

Every port is given (free ones, picked here), the temp dir is short and fresh
(``/tmp/lmr-<random>``: Ray's socket paths must stay under 108 bytes), usage stats are off,
and the cluster counts 2 CPUs and no GPU. Ready means the Jobs API answers. SIGTERM to
``ray start --block`` stops every Ray process it started; ``stop`` then checks with psutil
that none is left (Ray resolves ``--node-ip-address=127.0.0.1`` to the machine's address for
its internal services; the dashboard and Jobs API stay on 127.0.0.1).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil

RAY = Path(sys.executable).with_name("ray")
_WORKER_PORTS = 64


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports nothing listens on now (on any address)."""
    sockets: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("", 0))
            sockets.append(sock)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for sock in sockets:
            sock.close()


def free_port_range(count: int) -> int:
    """The first of ``count`` consecutive free ports below the ephemeral range."""
    for _ in range(200):
        first = 20000 + secrets.randbelow(10000)
        sockets: list[socket.socket] = []
        try:
            for port in range(first, first + count):
                sock = socket.socket()
                sockets.append(sock)
                sock.bind(("", port))
            return first
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


class RayCluster:
    """One head node; ``address`` is its dashboard (Jobs API) on 127.0.0.1."""

    def __init__(self, *, num_cpus: int = 2) -> None:
        self.temp_dir = Path(f"/tmp/lmr-{secrets.token_hex(3)}")
        self.num_cpus = num_cpus
        (
            self.gcs_port,
            self.node_manager_port,
            self.object_manager_port,
            self.dashboard_port,
            self.agent_listen_port,
            self.agent_grpc_port,
            self.metrics_port,
            self.runtime_env_port,
            self.client_server_port,
            self.autoscaler_metrics_port,
            self.dashboard_metrics_port,
        ) = free_ports(11)
        self.address = f"http://127.0.0.1:{self.dashboard_port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = self.temp_dir.with_suffix(".log")

    def start(self, timeout: float = 90.0) -> None:
        workers = free_port_range(_WORKER_PORTS)
        argv = [
            str(RAY),
            "start",
            "--head",
            "--block",
            "--node-ip-address=127.0.0.1",
            "--dashboard-host=127.0.0.1",
            f"--port={self.gcs_port}",
            f"--node-manager-port={self.node_manager_port}",
            f"--object-manager-port={self.object_manager_port}",
            f"--dashboard-port={self.dashboard_port}",
            f"--dashboard-agent-listen-port={self.agent_listen_port}",
            f"--dashboard-agent-grpc-port={self.agent_grpc_port}",
            f"--metrics-export-port={self.metrics_port}",
            f"--runtime-env-agent-port={self.runtime_env_port}",
            f"--ray-client-server-port={self.client_server_port}",
            f"--min-worker-port={workers}",
            f"--max-worker-port={workers + _WORKER_PORTS - 1}",
            f"--temp-dir={self.temp_dir}",
            f"--num-cpus={self.num_cpus}",
            "--num-gpus=0",
            f"--object-store-memory={80 * 1024 * 1024}",
            "--disable-usage-stats",
            "--include-log-monitor=false",
        ]
        env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "AUTOSCALER_METRIC_PORT": str(self.autoscaler_metrics_port),
            "DASHBOARD_METRIC_PORT": str(self.dashboard_metrics_port),
        }
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        pause = 0.05
        with httpx.Client(timeout=5.0) as client:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(
                        f"ray start exited with {self.proc.returncode}: {self.output()}"
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if client.get(f"{self.address}/api/jobs/").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the Ray Jobs API did not answer in {timeout} s")
                time.sleep(pause)
                pause = min(pause * 2, 0.25)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def leftovers(self) -> list[psutil.Process]:
        """Processes still running that belong to this cluster: in the session of ``ray
        start``, naming its temp dir, or (job commands, which get sessions of their own)
        with ``RAY_ADDRESS`` pointing at its GCS port."""
        found = []
        mine = str(self.temp_dir)
        session = self.proc.pid if self.proc is not None else None
        ray_address = f":{self.gcs_port}"
        for proc in psutil.process_iter(["pid", "cmdline", "status"]):
            if proc.pid == os.getpid() or proc.info["status"] == psutil.STATUS_ZOMBIE:
                continue
            try:
                cmdline = " ".join(proc.info["cmdline"] or ())
                in_session = session is not None and os.getsid(proc.pid) == session
                job = proc.environ().get("RAY_ADDRESS", "").endswith(ray_address)
            except (psutil.Error, OSError):
                continue
            if in_session or mine in cmdline or job:
                found.append(proc)
        return found

    def stop(self, timeout: float = 60.0) -> list[str]:
        """SIGTERM ``ray start`` and wait for it; SIGKILL whatever is left. Returns the
        command lines of the processes that outlived the SIGTERM (none, normally)."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        survivors: list[str] = []
        deadline = time.monotonic() + 10.0
        while (left := self.leftovers()) and time.monotonic() < deadline:
            time.sleep(0.1)
        for proc in left:
            with contextlib.suppress(psutil.Error):
                survivors.append(" ".join(proc.cmdline())[:200])
                proc.kill()
        shutil.rmtree(self.temp_dir, ignore_errors=True)
        with contextlib.suppress(OSError):
            self.log.unlink()
        return survivors


@contextlib.contextmanager
def running_cluster(num_cpus: int) -> Iterator[RayCluster]:
    """A started cluster; stopped after, and no Ray process may outlive it."""
    head = RayCluster(num_cpus=num_cpus)
    head.start()
    try:
        yield head
    finally:
        survivors = head.stop()
    assert survivors == [], f"Ray processes outlived ray start: {survivors}"
