"""`medfleet site sync` and `medfleet site listen`: the site's PACS commands."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["DEFAULT_FILE", "add_pacs_config_argument", "register"]

#: Where `medfleet site sync/listen` and `predict --store` look without --pacs-config
#: (the site daemon's default state folder). Here, not in `config`: importing the
#: package would load pydicom and pynetdicom for every `medfleet --help`.
DEFAULT_FILE = Path("~/.medfleet/site/pacs.toml")


def add_pacs_config_argument(parser: argparse.ArgumentParser) -> None:
    """The ``--pacs-config`` option (default: ``~/.medfleet/site/pacs.toml``)."""
    parser.add_argument(
        "--pacs-config",
        type=Path,
        default=DEFAULT_FILE,
        help="the site's PACS file (addresses, AE titles, saved query, cache-dir); "
        "site-local, never sent",
    )


def register(sub: Any) -> None:
    """Add ``sync`` and ``listen`` to the ``site`` command group."""
    sync = sub.add_parser(
        "sync",
        help="retrieve the saved query's new studies from the PACS into the cache",
        description="Query the PACS (C-FIND or QIDO-RS) with the saved query and retrieve "
        "(C-GET or WADO-RS) every study the cache lacks. A study enters the cache, the "
        "site's data folder, only when all of its instances arrived; an interrupted one "
        "is resumed by the next sync. Exit code 0 when every study found is in the cache.",
    )
    sync.add_argument("--pacs", default=None, help="which PACS of the file (default: the only one)")
    add_pacs_config_argument(sync)
    sync.set_defaults(func=_sync)
    listen = sub.add_parser(
        "listen",
        help="receive studies pushed by the PACS or a modality (storage SCP)",
        description="Accept C-STORE on [listen] port with [listen] ae-title, only from the "
        "calling AE titles in allowed-calling-ae; each instance is written atomically into "
        "the cache. Runs until stopped (Ctrl-C, SIGTERM).",
    )
    add_pacs_config_argument(listen)
    listen.set_defaults(func=_listen)


def _sync(args: argparse.Namespace) -> int:
    from client.pacs.config import load_pacs_settings
    from client.pacs.sync import sync_pacs

    settings = load_pacs_settings(args.pacs_config)
    summary = sync_pacs(settings, args.pacs)
    print(
        f"MedFleet site sync ({summary.pacs}): {summary.found} studies match the saved query, "
        f"{summary.already} already in the cache, {summary.retrieved} retrieved "
        f"({summary.instances} instances, {summary.seconds:.1f} s)"
    )
    if summary.incomplete:
        print(
            f"  {len(summary.incomplete)} study(ies) incomplete, kept in staging and left out "
            "of the data: run `medfleet site sync` again to resume"
        )
    if summary.error:
        print(f"  interrupted: {summary.error}")
    print(f"  cache: {settings.cache_dir} (check it with `medfleet data check`)")
    return 0 if summary.ok else 1


def _listen(args: argparse.Namespace) -> int:
    import logging

    from client.pacs.cache import PacsCache
    from client.pacs.config import load_pacs_settings
    from client.pacs.listen import StorageListener
    from shared.errors import ConfigError
    from shared.process import exit_on_sigterm

    settings = load_pacs_settings(args.pacs_config)
    if settings.listen is None:
        raise ConfigError(
            "the PACS file has no [listen] section (ae-title, port, allowed-calling-ae)"
        )
    listener = StorageListener(settings.listen, PacsCache(settings.cache_dir))
    exit_on_sigterm()
    logging.getLogger("medfleet").info(
        "listening as %s on port %d; accepting %s",
        settings.listen.ae_title,
        settings.listen.port,
        ", ".join(settings.listen.allowed_calling_ae),
    )
    try:
        listener.serve()
    except OSError as err:
        raise ConfigError(
            "site listen cannot bind [listen] port: it is taken or needs privileges",
            local=str(err),
        ) from None
    finally:
        listener.stop()
        print(
            f"MedFleet site listen: {listener.received} instance(s) received, "
            f"{listener.refused} association(s) refused"
        )
    return 0
