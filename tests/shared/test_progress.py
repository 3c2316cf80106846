"""Progress bars and the site/round context of log lines."""

from __future__ import annotations

import io
import logging

import pytest
from rich.console import Console

from shared import progress as progress_module
from shared.log_context import site_round
from shared.progress import progress, progress_enabled, track


@pytest.fixture
def screen(monkeypatch: pytest.MonkeyPatch) -> io.StringIO:
    """Bars forced on and drawn into a string, as a terminal would show them."""
    buffer = io.StringIO()
    monkeypatch.setenv(progress_module.ENV, "on")
    monkeypatch.setattr(
        progress_module, "_console", lambda: Console(file=buffer, force_terminal=True, width=100)
    )
    return buffer


def test_no_bar_is_drawn_when_stderr_is_not_a_terminal(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Prepare: pytest's captured stderr is not a terminal
    monkeypatch.delenv(progress_module.ENV, raising=False)

    # Execute
    items = list(track(range(5), "indexing DICOM files"))
    with progress("training", 3) as advance:
        advance(3)

    # Assert
    assert not progress_enabled()
    assert items == [0, 1, 2, 3, 4]
    assert capsys.readouterr().err == ""


def test_a_bar_counts_steps_and_names_the_site_and_round(screen: io.StringIO) -> None:
    # Execute
    with site_round("site-1", 3, "fit"), progress("training 2 epoch(s)", 4) as advance:
        for _ in range(4):
            advance(1)
        progress_module._live[0].refresh()

    # Assert
    text = screen.getvalue()
    assert "[site-1 round 3 fit] training 2 epoch(s)" in text
    assert "4/4" in text
    assert progress_module._live == []  # the display is gone again


def test_nested_bars_share_one_display(screen: io.StringIO) -> None:
    # Execute
    with progress("outer", 2) as outer:
        for _ in track(range(3), "inner"):
            pass
        outer(1)
        shown = len(progress_module._live)
        progress_module._live[0].refresh()

    # Assert
    assert shown == 1 and progress_module._live == []
    assert "outer" in screen.getvalue()


def test_log_lines_of_a_site_task_say_which_site_and_round(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    ours, others = logging.getLogger("medfleet.test"), logging.getLogger("elsewhere.test")
    caplog.set_level(logging.INFO)

    # Execute
    with site_round("site-2", 7, "evaluate"):
        ours.info("validation on %d images", 12)
        others.info("not ours")
    ours.info("after the round")

    # Assert
    messages = [record.getMessage() for record in caplog.records]
    assert messages == [
        "[site-2 round 7 evaluate] validation on 12 images",
        "not ours",
        "after the round",
    ]
