"""A federation for the deployment tests: kits, data, server, site daemons, crashes.

On 127.0.0.1, or with a `Lan` the server and each site in a network namespace of its own.
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from server.provision import provision
from tests.deployment import harness
from tests.deployment.netns import Lan, in_netns

# The server asks its SuperLink for the sites' status in-process (it ran `flwr supernode
# ls`, 0.8 s of CPU, per line), so the tests can look every second.
STATUS_INTERVAL_S = 1
# The sites' idle wait between polls (1 s by default): each SecAgg+ round has five
# exchanges that start with a poll; benchmarks/secure_rounds.py measured 37 s -> 30 s a round.
POLL_S = 0.2
# Backed off to after 30 s without a message: an idle fleet's polls cost the SuperLink CPU.
IDLE_POLL_S = 1.0
# Flower's 30 s heartbeat lets a killed site back in (and its pending messages fail) only
# 60 s after its death; at the least the server accepts (10 s) that is 20 s.
HEARTBEAT_S = 10
# Small enough that a SecAgg+ round takes seconds on two shared cores.
TRAINING = ("local-epochs=1", "image-size=32", "batch-size=8")


@dataclass
class Fleet:
    """One provisioned federation: every process it starts is tracked and stopped by PID."""

    root: Path
    sites: tuple[str, ...]
    address: str
    data: dict[str, Path]
    procs: harness.Processes
    server: subprocess.Popen[bytes] | None = None
    daemons: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    ports: dict[str, int] = field(default_factory=dict)
    app: Path | None = None
    lan: Lan | None = None  # set: server and sites are separate hosts (namespaces)
    site_options: tuple[str, ...] = ()  # more `medfleet site start` options for every site
    #: More studies the sites take part in: task -> site -> folder (`site start --task-data`).
    task_data: dict[str, dict[str, Path]] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        root: Path,
        sites: Sequence[str],
        scale: float = 0.15,
        lan: Lan | None = None,
        site_options: Sequence[str] = (),
        task: str = "classification",
        more_tasks: Sequence[tuple[str, float]] = (),
    ) -> Fleet:
        """Provision kits for `sites` on a free port and write one synthetic data set each
        (of `task`'s kind), plus one of each (task, scale) in `more_tasks`, which a run of
        that task reads instead."""
        from simulations.synth import generate_sites

        address = f"{lan.server_ip if lan else '127.0.0.1'}:{harness.free_port()}"
        provision(harness.federation_file(root / "hospitals.toml", address, sites), root / "kits")
        folders = generate_sites(root / "data", n_sites=len(sites), seed=0, scale=scale, task=task)
        fleet = cls(root, tuple(sites), address, dict(zip(sites, folders, strict=True)),
                    harness.Processes(root / "flwr-home"), lan=lan,
                    site_options=tuple(site_options))  # fmt: skip
        fleet.app = harness.copy_app(root / "app")
        for extra, extra_scale in more_tasks:
            extra_folders = generate_sites(root / f"data-{extra}", n_sites=len(sites), seed=0,
                                           scale=extra_scale, task=extra)  # fmt: skip
            fleet.task_data[extra] = dict(zip(sites, extra_folders, strict=True))
        return fleet

    @property
    def kits(self) -> Path:
        return self.root / "kits"

    @property
    def home(self) -> Path:
        """FLWR_HOME of every process the tests start."""
        return self.procs.home

    def on_server(self) -> list[str]:
        """Command prefix placing a process on the server's host."""
        return in_netns(self.lan.server_ns, []) if self.lan else []

    def on_site(self, site: str) -> list[str]:
        """Command prefix placing a process on `site`'s host."""
        return in_netns(self.lan.site_ns(self.sites.index(site)), []) if self.lan else []

    def cli(
        self, args: Sequence[str], timeout: float = 180, site: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        """`medfleet ARGS` to completion on the server's host (or on `site`'s)."""
        prefix = self.on_site(site) if site else self.on_server()
        return harness.run_cli(args, self.home, timeout=timeout, prefix=prefix)

    @property
    def server_kit(self) -> Path:
        return self.root / "kits" / "server"

    @property
    def server_state(self) -> Path:
        return self.root / "server-state"

    def dumps(self, site: str) -> Path:
        """Where site `site` dumps what it received and sent each round (debug-dump-dir)."""
        return self.root / "dumps" / site

    def start_server(self, log_name: str = "server.log") -> Path:
        """`medfleet server start` on the fleet's state folder; return its log once serving."""
        log_file = self.root / log_name
        host = "0.0.0.0" if self.lan else "127.0.0.1"
        args = harness.server_start_args(str(self.server_kit), str(self.server_state), host)
        self.server = self.procs.start(
            [*args, "--status-interval", str(STATUS_INTERVAL_S)], log_file, prefix=self.on_server()
        )
        harness.wait_for(log_file, r"SuperLink pid \d+ serving", 240, self.server)
        return log_file

    def start_site(self, site: str) -> subprocess.Popen[bytes]:
        """`medfleet site start` for `site`, on its own state folder and runtime port."""
        self.ports.setdefault(site, harness.free_port())
        args = harness.site_start_args(
            str(self.root / "kits" / site), str(self.data[site]), "cpu",
            str(self.root / f"{site}-state"),
        )  # fmt: skip
        extra = ["--runtime-port", str(self.ports[site]), "--poll-interval", str(POLL_S),
                 "--idle-poll-interval", str(IDLE_POLL_S),
                 "--heartbeat-interval", str(HEARTBEAT_S),
                 *self.site_options,
                 *[f"--task-data={task}={folders[site]}"
                   for task, folders in self.task_data.items()],
                 "--node-config", f"debug-dump-dir={self.dumps(site)}"]  # fmt: skip
        if self.app is not None and self.procs.approve_apps:
            harness.approve_app(self.root / f"{site}-state", self.app)  # the very copy run
        self.daemons[site] = self.procs.start(
            [*args, *extra], self.root / f"{site}.log", prefix=self.on_site(site)
        )
        return self.daemons[site]

    def start(self, timeout: float = 300) -> Path:
        """Server and every site daemon; return the server log once all sites are online."""
        log_file = self.start_server()
        for site in self.sites:
            self.start_site(site)
        self.wait_online(log_file, self.sites, timeout)
        return log_file

    def wait_online(self, log_file: Path, sites: Sequence[str], timeout: float = 300) -> None:
        """Wait until the server's status line lists exactly `sites` as connected."""
        pattern = rf"sites connected: {', '.join(sites)};"
        harness.wait_for(log_file, pattern, timeout, self.server)

    def run_args(self, out: Path, *extra: str) -> list[str]:
        """`medfleet server run` for this fleet, with tiny training, writing to `out`."""
        sets = [arg for key in TRAINING for arg in ("--set", key)]
        return ["server", "run", "--kit", str(self.server_kit), "--state-dir",
                str(self.server_state), "--out-dir", str(out), "--app", str(self.app),
                *sets, *extra]  # fmt: skip

    def resume_args(self, out: Path) -> list[str]:
        """`medfleet server run --resume OUT`: the stored config, nothing typed again."""
        return ["server", "run", "--kit", str(self.server_kit), "--state-dir",
                str(self.server_state), "--app", str(self.app), "--resume", str(out)]  # fmt: skip

    def submit(self, args: Sequence[str], log_name: str) -> subprocess.Popen[bytes]:
        """Start a `medfleet server run ...` in the background (it streams the run's logs)."""
        return self.procs.start(list(args), self.root / log_name, prefix=self.on_server())

    def crash_server(self) -> dict[int, str]:
        """SIGKILL `medfleet server start`, the SuperLink and the ServerApp it spawned."""
        assert self.server is not None
        killed = harness.kill_tree(self.server.pid)
        self.procs.procs.remove(self.server)
        self.server.wait(timeout=10)
        self.server = None
        return killed

    def crash_site(self, site: str) -> dict[int, str]:
        """SIGKILL a site daemon, its SuperNode and any ClientApp process it runs."""
        daemon = self.daemons.pop(site)
        killed = harness.kill_tree(daemon.pid)
        self.procs.procs.remove(daemon)
        daemon.wait(timeout=10)
        return killed

    def close(self) -> list[str]:
        """Stop everything by PID; return what was still running after that (then killed)."""
        self.procs.close()
        deadline = time.monotonic() + 10
        strays = harness.stray_processes(self.root)
        while strays and time.monotonic() < deadline:  # helpers exit shortly after parents
            time.sleep(0.5)
            strays = harness.stray_processes(self.root)
        described = [f"{p.pid} {harness.command_line(p)}" for p in strays]
        for proc in strays:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(strays, timeout=10)
        return described
