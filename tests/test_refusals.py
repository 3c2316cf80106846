"""Bad configuration is refused at the door: exit code 2 and a message that says what to fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.provision import provision
from shared.cli import main


@pytest.fixture
def kits(tmp_path: Path) -> Path:
    fed = tmp_path / "federation.toml"
    fed.write_text('[server]\naddress = "127.0.0.1:1"\n[sites]\nnames = ["site-a", "site-b"]\n')
    provision(fed, tmp_path / "kits")
    return tmp_path / "kits"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sim", "--task", "clasification"], "did you mean 'classification'"),
        (["sim", "--strategy", "fedmedain"], "did you mean 'fedmedian'"),
        (["sim", "--sites", "0"], "--sites must be at least 1"),
        (["sim", "--rounds", "0"], "'num-server-rounds' = 0 trains nothing"),
        (["sim", "--set", "cross-site-local=true", "--secagg"], "'secagg' = true shows"),
        (["sim", "--evaluate-only", "absent.pt"], "no model at the given path"),
        (["sim", "--evaluate-only", "absent.pt", "--resume", "r"], "do not go together"),
        (["sim", "--lr", "0"], "'lr' must be in"),
        (["sim", "--set", "seg-patch-sise=64"], "did you mean 'seg-patch-size'"),
        (["sim", "--set", "image-size=8"], "'image-size' must be in [16, 512], got 8"),
        (
            ["sim", "--secagg", "--set", "secagg-threshold=4"],
            "'secagg-threshold' must be more than half",
        ),
        (["sim", "--secagg", "--strategy", "krum"], "SecAgg+ shows the server only their sum"),
        (["sim", "--sites", "4", "--strategy", "bulyan"], "needs min-sites >= 7"),
    ],
)
def test_sim_refuses_bad_config_before_starting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    # Execute
    code = main([*argv, "--out", str(tmp_path / "out")])

    # Assert: nothing ran, nothing was generated
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_server_run_refuses_bad_config_and_missing_kits(
    kits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Execute
    missing = main(["server", "run", "--kit", str(tmp_path / "nokit")])
    unknown = main(["server", "run", "--kit", str(kits / "server"), "--set", "lrr=0.1"])
    threshold = main(
        ["server", "run", "--kit", str(kits / "server"), "--set", "secagg-threshold=9"]
    )

    # Assert: SecAgg+ with two sites is refused, as is a missing kit and an unknown key
    err = capsys.readouterr().err
    assert (missing, unknown, threshold) == (2, 2, 2)
    assert "kit settings file not found" in err
    assert "unknown config key 'lrr' (did you mean 'lr'?)" in err
    assert "SecAgg+ needs at least 3 sites per round" in err


def test_server_run_refuses_local_models_under_secagg_and_a_missing_model_file(
    kits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: `server run` turns SecAgg+ on unless --no-secagg; the kit has two sites
    server = ["server", "run", "--kit", str(kits / "server"), "--set", "secagg-num-shares=2"]

    # Execute
    local = main([*server, "--set", "cross-site-local=true"])
    missing = main([*server, "--evaluate-only", str(tmp_path / "absent.pt")])

    # Assert
    err = capsys.readouterr().err
    assert (local, missing) == (2, 2)
    assert "'cross-site-local' = true needs each site's own model" in err
    assert "no model at the given path" in err


def test_site_start_refuses_a_missing_data_folder(
    kits: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Execute
    code = main(
        [
            "site", "start", "--kit", str(kits / "site-a"), "--data", str(tmp_path / "none"),
            "--state-dir", str(tmp_path / "state"),
        ]
    )  # fmt: skip

    # Assert
    assert code == 2
    assert "is not a directory; pass --data" in capsys.readouterr().err
