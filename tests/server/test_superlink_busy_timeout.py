"""The SuperLink waits 20 s, not Flower's 5 s, for its locked state database."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from flwr.supercore import sql_mixin

from server import superlink


@pytest.fixture
def restored() -> Iterator[None]:
    pragmas = sql_mixin.SQLITE_PRAGMAS
    try:
        yield
    finally:
        sql_mixin.SQLITE_PRAGMAS = pragmas  # type: ignore[misc]


def _busy_timeout_ms(path: Path) -> int:
    """What Flower's own connect hook sets on a new connection."""
    connection = sqlite3.connect(path)
    try:
        sql_mixin._set_sqlite_pragmas(connection, None)
        return int(connection.execute("PRAGMA busy_timeout").fetchone()[0])
    finally:
        connection.close()


def test_flower_alone_waits_five_seconds(tmp_path: Path) -> None:
    assert _busy_timeout_ms(tmp_path / "state.db") == 5000


def test_connections_wait_the_longer_timeout(tmp_path: Path, restored: None) -> None:
    # Execute
    changed = superlink.longer_busy_timeout()
    # Assert: Flower's hook now sets 20 s, and its other pragmas are kept
    assert changed is True
    assert _busy_timeout_ms(tmp_path / "state.db") == superlink.BUSY_TIMEOUT_MS == 20_000
    connection = sqlite3.connect(tmp_path / "state.db")
    sql_mixin._set_sqlite_pragmas(connection, None)
    assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    connection.close()


def test_a_locked_database_is_waited_for_not_failed(tmp_path: Path, restored: None) -> None:
    # Prepare: another connection holds the write lock for 6 s (5 s failed a request)
    superlink.longer_busy_timeout()
    path = tmp_path / "state.db"
    setup = sqlite3.connect(path)
    sql_mixin._set_sqlite_pragmas(setup, None)  # WAL, as Flower's state database is
    setup.execute("CREATE TABLE t (x)")
    setup.commit()
    setup.close()
    holder = subprocess.Popen(
        [sys.executable, "-c", (
            "import sqlite3, sys, time\n"
            "c = sqlite3.connect(sys.argv[1], isolation_level=None)\n"
            "c.execute('BEGIN IMMEDIATE'); c.execute('INSERT INTO t VALUES (1)')\n"
            "print('locked', flush=True); time.sleep(6); c.execute('COMMIT')\n"
        ), str(path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
    connection = sqlite3.connect(path, timeout=0)
    sql_mixin._set_sqlite_pragmas(connection, None)
    # Execute: a write through a connection set up by Flower's hook
    connection.execute("INSERT INTO t VALUES (2)")
    connection.commit()
    # Assert: it waited for the lock and both rows are there
    assert sorted(r[0] for r in connection.execute("SELECT x FROM t")) == [1, 2]
    connection.close()
    assert holder.wait(timeout=30) == 0
