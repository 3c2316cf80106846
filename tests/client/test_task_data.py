"""A site in several studies: `site start --task-data TASK=DIR` gives each task its folder."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from client.daemon import SiteKit, supernode_command, task_data_folders
from shared.config import RunConfig, SiteConfig
from shared.errors import ConfigError


def test_each_task_reads_its_own_folder_and_others_the_default(tmp_path: Path) -> None:
    # Prepare: the node config a daemon started with --data and one --task-data passes
    default, lung = tmp_path / "ct-images", tmp_path / "lung-ct"
    default.mkdir(), lung.mkdir()
    folders = task_data_folders([f"detection={lung}"])
    node = {"data-dir": str(default), "site-name": "site-a"}
    node.update({f"data-dir-{task}": str(path) for task, path in folders.items()})

    # Execute
    chosen = {
        task: SiteConfig.from_node_config(node, RunConfig(task=task)).data_dir
        for task in ("classification", "detection", "series")
    }

    # Assert
    assert chosen == {"classification": default, "detection": lung, "series": default}


def test_task_folders_travel_in_the_supernode_node_config(tmp_path: Path) -> None:
    # Prepare
    kit = SiteKit(tmp_path, "site-a", "127.0.0.1:9092", tmp_path / "ca.pem",
                  tmp_path / "auth", "", "cpu")  # fmt: skip
    series = tmp_path / "series"

    # Execute
    command = supernode_command(
        kit, tmp_path, "cpu", 9094, node_config={"data-dir-series": str(series)}
    )

    # Assert: Flower's node-config syntax, the task's folder quoted beside data-dir
    node_config = command[command.index("--node-config") + 1]
    assert shlex.split(node_config)[:2] == [f"data-dir={tmp_path}", "site-name=site-a"]
    assert f'data-dir-series="{series}"' in node_config


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["detection"], "TASK=DIR"),
        (["detektion={folder}"], "did you mean|detection"),
        (["series={folder}", "series={folder}"], "twice"),
        (["series={folder}/missing"], "not a directory"),
    ],
)
def test_bad_task_data_is_refused_saying_what_to_fix(
    tmp_path: Path, pairs: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        task_data_folders([pair.format(folder=tmp_path) for pair in pairs])
