"""One site daemon per state folder: an exclusive `flock` held for the daemon's lifetime."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType

from shared.errors import ConfigError

__all__ = ["LOCK_NAME", "StateDirLock"]

LOCK_NAME = "daemon.lock"


class StateDirLock:
    """Exclusive hold of a site daemon's state folder (`--state-dir`).

    The lock is the `flock` on ``STATE_DIR/daemon.lock``, not the file: the kernel drops
    it when the holder exits, even on SIGKILL, so a stale file never blocks a new daemon.
    The file holds the holder's PID, for the message a second daemon gets. Its descriptor
    is not inherited, so the SuperNode and its helpers never hold the lock.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock and write this process's PID into the lock file.

        Raises
        ------
        ConfigError
            When another process holds the folder, naming `--state-dir` and its PID.
        """
        if self._fd is not None:
            return
        self.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(
                f"state folder {self.state_dir} is in use by another site daemon "
                f"({f'PID {holder}' if holder else 'PID unknown'}); stop that daemon or "
                "give this one its own folder with --state-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        """Clear the PID and drop the lock; the file stays (removing it would race)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)  # closing the only descriptor releases the flock

    def __enter__(self) -> StateDirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    """The PID a holder wrote into the lock file, or None if there is none yet."""
    text = os.pread(fd, 32, 0).decode(errors="replace").strip()
    return int(text) if text.isdigit() else None
