"""A site daemon keeps its decoded images on disk: each ClientApp task is a fresh process."""

from __future__ import annotations

import stat
import sys
from pathlib import Path
from typing import Any

import pytest
from flwr.common.config import parse_config_args

import client.daemon as daemon
from client.daemon import DATA_CACHE_DIR, SiteKit, run_site
from shared.config import RunConfig, SiteConfig
from shared.dicom.transforms import LoadDicomImaged
from shared.tasks import get_task
from simulations.synth import generate_sites
from tests.deployment.harness import free_port


def _node_config(
    site_kit: SiteKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: dict[str, str]
) -> dict[str, Any]:
    """The node config `run_site` gives the SuperNode, parsed the way Flower parses it."""
    seen: list[list[str]] = []

    def capture(*args: Any) -> list[str]:
        seen.append(real(*args))
        return [sys.executable, "-c", "raise SystemExit(3)"]  # the SuperNode exits at once

    real = daemon.supernode_command
    monkeypatch.setattr(daemon, "supernode_command", capture)
    monkeypatch.setattr(daemon, "exit_on_sigterm", lambda: None)  # keep pytest's handler
    (tmp_path / "data").mkdir(exist_ok=True)
    code = run_site(site_kit, tmp_path / "data", "cpu", state_dir=tmp_path / "state",
                    runtime_port=free_port(), node_config=extra, max_restarts=0,
                    log_file=tmp_path / "supernode.log")  # fmt: skip
    assert code == 3
    command = seen[0]
    return parse_config_args([command[command.index("--node-config") + 1]])


def test_the_cache_is_in_the_state_folder_by_default_and_private(
    site_kit: SiteKit, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Execute
    node = _node_config(site_kit, tmp_path, monkeypatch, {})
    # Assert: the ClientApp reads it as its cache, a folder only the site's user can open
    site = SiteConfig.from_node_config(node, RunConfig())
    assert site.cache_dir == tmp_path / "state" / DATA_CACHE_DIR
    assert stat.S_IMODE(site.cache_dir.stat().st_mode) == 0o700


@pytest.mark.parametrize(("value", "expected"), [("/srv/cache", Path("/srv/cache")), ("", None)])
def test_node_config_moves_or_turns_off_the_cache(
    site_kit: SiteKit,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    value: str,
    expected: Path | None,
) -> None:
    node = _node_config(site_kit, tmp_path, monkeypatch, {"cache-dir": value})
    assert SiteConfig.from_node_config(node, RunConfig()).cache_dir == expected
    assert not (tmp_path / "state" / DATA_CACHE_DIR).exists()


def test_a_later_task_reads_the_cache_and_decodes_no_dicom(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: one task loads the site and fills the cache
    folder = generate_sites(tmp_path / "data", n_sites=1, seed=5, scale=0.15)[0]
    cache = tmp_path / "cache"
    task = get_task(RunConfig.from_mapping({"image-size": 32}))
    first = task.load_site(folder, cache)
    expected = [item["image"] for item in first.val]
    n_train = len([1 for _ in first.train])  # the first epoch decodes and caches
    assert expected and n_train and any(cache.iterdir())

    # Execute: the next task (a new process in a deployment) with DICOM decoding broken
    def no_decoding(self: LoadDicomImaged, data: Any) -> Any:
        raise AssertionError("a cached image was decoded again")

    monkeypatch.setattr(LoadDicomImaged, "__call__", no_decoding)
    later = get_task(RunConfig.from_mapping({"image-size": 32})).load_site(folder, cache)
    # Assert: the same images, all from the cache
    images = [item["image"] for item in later.val]
    assert len(images) == len(expected)
    assert all(a.equal(b) for a, b in zip(images, expected, strict=True))
    assert len([1 for _ in later.train]) == n_train
