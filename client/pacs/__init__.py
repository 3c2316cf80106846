"""A site's PACS: pull studies by saved query, receive pushed ones, store results back."""

from client.pacs.config import PacsSettings, load_pacs_settings
from client.pacs.store import store_results
from client.pacs.sync import SyncSummary, sync_pacs

__all__ = ["PacsSettings", "SyncSummary", "load_pacs_settings", "store_results", "sync_pacs"]
