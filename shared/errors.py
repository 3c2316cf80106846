"""Project exceptions, and which of their text may leave a site (`public`, `reason_for_server`)."""

from __future__ import annotations

import re

__all__ = [
    "ConfigError",
    "DataError",
    "MedFleetError",
    "ProvisioningError",
    "ReportError",
    "RoundError",
    "UpdateError",
    "reason_for_server",
    "scrub_paths",
]

# A whitespace- or quote-delimited token holding a path separator: '/data/x.dcm', 'a\\b'.
_PATH_TOKEN = re.compile(r"""[^\s'"`()\[\]{}<>,;]*[/\\][^\s'"`()\[\]{}<>,;]*""")
_CLASS_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


class MedFleetError(Exception):
    """Base class of every error MedFleet raises on purpose: the one kind safe to send.

    An error holds two texts. The message (first argument) names the key or file kind
    and says how to fix it; it is built from safe facts only (keys, counts, kinds,
    site names) and is the only text that may travel to the server, as `public`. The
    keyword `local` holds what only the site may see: file paths, a parser's own
    words. ``str(err)`` (the site's log and command line) shows both.

    Parameters
    ----------
    message : str
        Safe text: never a file path, patient identifier or DICOM header value.
    local : str
        Site-local detail, e.g. the file's path; it never leaves the machine.
    """

    def __init__(self, message: str = "", *, local: str = "") -> None:
        super().__init__(message)
        self.local = local

    @property
    def message(self) -> str:
        """The safe text as written (without the site-local detail)."""
        return str(self.args[0]) if self.args else ""

    @property
    def public(self) -> str:
        """The text that may reach the server: the message, any path-like token removed."""
        return scrub_paths(self.message)

    def __str__(self) -> str:
        return f"{self.message} ({self.local})" if self.local else self.message


class ConfigError(MedFleetError, ValueError):
    """A run, node or federation setting is missing or out of range."""


class DataError(MedFleetError):
    """A site's data cannot be used (no usable images, missing labels, ...)."""


class UpdateError(MedFleetError):
    """A model update is unusable (wrong shapes, NaN or Inf values)."""


class ProvisioningError(MedFleetError):
    """Keys, certificates or kits are missing, unsafe or inconsistent."""


class ReportError(MedFleetError):
    """A run report cannot be built: the folder holds no readable run record."""


class RoundError(MedFleetError):
    """A federated round cannot complete (too few sites replied in time, nothing usable)."""


def scrub_paths(text: str) -> str:
    """Replace every token that holds a path separator with ``<path>`` (defence in depth)."""
    return _PATH_TOKEN.sub("<path>", text)


def reason_for_server(err: BaseException, log_ref: str) -> str:
    """The only text a site sends about a failure.

    Parameters
    ----------
    err : BaseException
        What the site's task raised.
    log_ref : str
        Reference of the site's log entry that holds the full text and traceback.

    Returns
    -------
    str
        A MedFleetError's class and `public` message; for any other exception (its text
        may quote paths or header values: OSError, pydicom, torch) only its class name
        and the log reference.
    """
    name = type(err).__name__
    if not _CLASS_NAME.fullmatch(name):
        name = "Exception"
    if isinstance(err, MedFleetError):
        return f"{name}: {err.public} (site log {log_ref})"
    return f"{name} at the site; the site's log has the details (site log {log_ref})"
