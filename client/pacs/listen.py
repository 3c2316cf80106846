"""`medfleet site listen`: a storage SCP (pynetdicom) that files pushed studies into the cache."""

from __future__ import annotations

import logging
import threading
from typing import Any

from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, AllStoragePresentationContexts, evt, sop_class

from client.pacs.cache import PacsCache, atomic_write, instance_path
from client.pacs.config import ListenConfig
from shared.errors import DataError

__all__ = ["StorageListener"]

log = logging.getLogger("medfleet.site.pacs")

_SUCCESS = 0x0000
# "Error: cannot understand" (PS3.4 B.2.3): an instance whose UIDs cannot name a file.
_CANNOT_UNDERSTAND = 0xC000
_OUT_OF_RESOURCES = 0xA700


class StorageListener:
    """Accept C-STORE from the configured calling AE titles only; write each file atomically.

    Each instance is written as ``CACHE/<study>/<series>/<sop>.dcm`` through a hidden
    temporary file renamed into place, so the index never sees half a file. Associations
    from any other calling AE title are rejected (A-ASSOCIATE-RJ, calling AE title not
    recognised) before any data is sent.
    """

    def __init__(self, config: ListenConfig, cache: PacsCache) -> None:
        self.config = config
        self.cache = cache
        self.received = 0
        self.refused = 0
        self._lock = threading.Lock()
        self.ae = AE(ae_title=config.ae_title)
        self.ae.require_called_aet = True
        self.ae.require_calling_aet = list(config.allowed_calling_ae)
        self.ae.add_supported_context(getattr(sop_class, "Verification"))  # noqa: B009
        for context in AllStoragePresentationContexts:
            if context.abstract_syntax is not None:
                self.ae.add_supported_context(context.abstract_syntax, ALL_TRANSFER_SYNTAXES)

    def serve(self) -> None:
        """Listen until interrupted (Ctrl-C or SIGTERM)."""
        self.cache.root.mkdir(parents=True, exist_ok=True)
        self.ae.start_server(
            (self.config.host, self.config.port), block=True, evt_handlers=self._handlers()
        )

    def stop(self) -> None:
        """Stop listening and close open associations."""
        self.ae.shutdown()

    def _handlers(self) -> list[Any]:
        return [(evt.EVT_C_STORE, self._on_store), (evt.EVT_REJECTED, self._on_rejected)]

    def _on_rejected(self, event: Any) -> None:
        with self._lock:
            self.refused += 1
        # The caller's AE title and address are site-local facts: this log stays here.
        log.warning(
            "refused an association from AE title %r (%s): not in [listen] allowed-calling-ae",
            event.assoc.requestor.ae_title,
            event.assoc.requestor.address,
        )

    def _on_store(self, event: Any) -> int:
        try:
            ds = event.dataset
            path = instance_path(
                self.cache.root,
                str(ds.StudyInstanceUID),
                str(ds.SeriesInstanceUID),
                str(event.request.AffectedSOPInstanceUID),
            )
        except (DataError, AttributeError, ValueError):
            log.warning("refused a pushed instance whose UIDs are missing or malformed")
            return _CANNOT_UNDERSTAND
        try:
            atomic_write(path, event.encoded_dataset(include_meta=True))
        except OSError as err:
            log.error("could not write a pushed instance: %s", err)
            return _OUT_OF_RESOURCES
        with self._lock:
            self.received += 1
        return _SUCCESS
