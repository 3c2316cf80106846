"""Silence pydicom's per-file warnings and logs, which can name the file being read."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["quiet_pydicom"]


@contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's warnings and log records (decoder failures log at ERROR).

    The data report counts what went wrong under fixed reasons instead.
    """
    pydicom_logger = logging.getLogger("pydicom")
    level = pydicom_logger.level
    pydicom_logger.setLevel(logging.CRITICAL + 1)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        pydicom_logger.setLevel(level)
