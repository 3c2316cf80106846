"""Separate network namespaces for a server and its sites: one bridge, one veth per site."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass, field

SUBNET = "10.77.{net}.{host}"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=30)


def netns_available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if shutil.which("ip") is None:
        return "the `ip` tool (iproute2) is not installed"
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        return "creating network namespaces needs root (CAP_SYS_ADMIN)"
    probe = f"mfprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as err:
        return f"`ip netns add` failed: {err.stderr.decode(errors='replace').strip()}"
    _ip("netns", "del", probe)
    return None


@dataclass
class Lan:
    """A server namespace with a bridge, and one namespace per site wired to it."""

    sites: tuple[str, ...]
    tag: str = field(default_factory=lambda: f"mf{os.getpid() % 100000}")
    net: int = field(default_factory=lambda: os.getpid() % 200 + 20)
    created: list[str] = field(default_factory=list)

    @property
    def server_ns(self) -> str:
        return f"{self.tag}-srv"

    @property
    def server_ip(self) -> str:
        return SUBNET.format(net=self.net, host=1)

    def site_ns(self, index: int) -> str:
        return f"{self.tag}-s{index}"

    def up(self) -> None:
        """Create the namespaces, the bridge and the veth pairs."""
        srv = self.server_ns
        _ip("netns", "add", srv)
        self.created.append(srv)
        _ip("-n", srv, "link", "set", "lo", "up")
        _ip("-n", srv, "link", "add", "br0", "type", "bridge")
        _ip("-n", srv, "addr", "add", f"{self.server_ip}/24", "dev", "br0")
        _ip("-n", srv, "link", "set", "br0", "up")
        for i in range(len(self.sites)):
            ns = self.site_ns(i)
            _ip("netns", "add", ns)
            self.created.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
            _ip("-n", srv, "link", "add", f"v{i}", "type", "veth", "peer", "name", "eth0",
                "netns", ns)  # fmt: skip
            _ip("-n", srv, "link", "set", f"v{i}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{SUBNET.format(net=self.net, host=10 + i)}/24",
                "dev", "eth0")  # fmt: skip
            _ip("-n", ns, "link", "set", "eth0", "up")

    def down(self) -> None:
        """Delete every namespace made (their veths go with them)."""
        for ns in reversed(self.created):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)
        self.created.clear()


def in_netns(ns: str, command: list[str]) -> list[str]:
    """`command` run inside namespace `ns` (`ip netns exec` execs it: same PID)."""
    return ["ip", "netns", "exec", ns, *command]
