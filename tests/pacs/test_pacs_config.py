"""The site's PACS file is checked at the door; sync's rules hold with any PACS's answers."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from client.pacs import load_pacs_settings, sync_pacs
from client.pacs.cache import PacsCache, instance_path
from client.pacs.config import SavedQuery
from client.pacs.remote import InstanceSink, PacsUnavailable, StoreResult, StudyHit, matches
from shared.cli import main
from shared.errors import ConfigError, DataError

GOOD = """cache-dir = "cache"
labels-csv = "labels.csv"
[pacs.radiology]
host = "pacs.example-hospital.org"
port = 104
called-ae = "RADPACS"
calling-ae = "MEDFLEET"
[pacs.radiology.query]
modality = "MR"
study-description = "MR HEAD*"
date-from = "20200101"
[pacs.web]
dicomweb = "https://pacs.example-hospital.org/dicom-web/"
[listen]
ae-title = "MEDFLEET"
port = 11112
allowed-calling-ae = ["RADPACS"]
"""


def test_a_good_pacs_file_gives_typed_values(tmp_path: Path) -> None:
    # Prepare
    path = tmp_path / "pacs.toml"
    path.write_text(GOOD)

    # Execute
    settings = load_pacs_settings(path)

    # Assert
    dimse, web = settings.get("radiology"), settings.get("web")
    assert settings.cache_dir == tmp_path / "cache"
    assert settings.labels_csv == tmp_path / "labels.csv"
    assert (dimse.protocol, dimse.host, dimse.port, dimse.called_ae) == (
        "dimse", "pacs.example-hospital.org", 104, "RADPACS",
    )  # fmt: skip
    assert dimse.query.date_range == "20200101-"
    assert (web.protocol, web.dicomweb) == (
        "dicomweb",
        "https://pacs.example-hospital.org/dicom-web",
    )
    assert settings.listen is not None and settings.listen.allowed_calling_ae == ("RADPACS",)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("port = 104", "port = 70000"),
            "[pacs.radiology] port must be an integer from 1 to 65535",
        ),
        (("called-ae = ", "caled-ae = "), "unknown key 'caled-ae' (did you mean 'called-ae'?)"),
        (('"RADPACS"\ncalling', '"RADIOLOGY-PACS-MAIN"\ncalling'), "called-ae must be an AE title"),
        (('modality = "MR"', 'modality = "mr"'), "modality must be a DICOM code string"),
        (('date-from = "20200101"', 'date-from = "2020-01-01"'), "date-from must be a date"),
        (('date-from = "20200101"', 'date-from = "20200101"\ndate-to = "20191231"'), "after"),
        (("[pacs.web]\n", '[pacs.web]\nhost = "x"\n'), "needs exactly one of host"),
        (('dicomweb = "https', 'dicomweb = "ftp'), "dicomweb must be an http"),
        (('allowed-calling-ae = ["RADPACS"]', "allowed-calling-ae = []"), "must list the AE"),
        (('cache-dir = "cache"\n', ""), "lacks cache-dir"),
        (("port = 104\n", 'port = 104\nretrieve = "move"\n'), "retrieve = move needs move-port"),
        (("port = 104\n", 'port = 104\nretrieve = "push"\n'), "retrieve must be get (C-GET)"),
    ],
)
def test_a_bad_pacs_file_is_refused_naming_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], change: tuple[str, str], message: str
) -> None:
    # Prepare
    path = tmp_path / "pacs.toml"
    assert change[0] in GOOD
    path.write_text(GOOD.replace(change[0], change[1], 1))

    # Execute
    code = main(["site", "sync", "--pacs", "radiology", "--pacs-config", str(path)])

    # Assert: exit 2 with the fix; the host stays out of the message's public part
    assert code == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert "example-hospital" not in err.split(" (")[0]


class _FakePacs:
    """A PACS answering from memory: a whole study, one short of an instance, and two
    whose count it does not report (0), one of them retrieved with a failure status."""

    def __init__(self) -> None:
        self.studies = {"1.2.3": 2, "1.2.4": 3, "1.2.6": 0, "1.2.7": 0}
        self.sent = {uid: [f"{uid}.1.1", f"{uid}.1.2"] for uid in self.studies}

    def find_studies(self, query: SavedQuery) -> list[StudyHit]:
        hits = [StudyHit(uid, n, ("MR",), "MR HEAD", "20240101") for uid, n in self.studies.items()]
        return [*hits, StudyHit("1.2.5", 1, ("CT",), "CT CHEST", "20240101")]

    def has_body_part(self, study: str, query: SavedQuery) -> bool:
        return True

    def retrieve(self, study: str, sink: InstanceSink) -> bool:
        sink("9.9.9", "9.9.9.1", "9.9.9.1.1", b"another study's instance")
        for sop in self.sent[study]:
            sink(study, f"{study}.1", sop, b"DICM" + sop.encode())
        return study != "1.2.6"  # a study whose retrieve the PACS reports as failed

    def store(self, paths: Sequence[Path]) -> list[StoreResult]:
        raise PacsUnavailable("not used")


def test_sync_commits_only_whole_studies_of_the_query(tmp_path: Path) -> None:
    # Prepare: a PACS whose CT study the query must skip (though the PACS returned it)
    path = tmp_path / "pacs.toml"
    path.write_text(GOOD)
    (tmp_path / "labels.csv").write_text("study_instance_uid,label\n1.2.3,1\n")
    settings = load_pacs_settings(path)

    # Execute
    summary = sync_pacs(settings, "radiology", remote=_FakePacs())

    # Assert: the whole study in the cache, the short one in staging, the foreign one dropped
    cache = PacsCache(settings.cache_dir)
    assert (summary.found, summary.retrieved) == (4, 2)
    assert summary.incomplete == ["1.2.4", "1.2.6"] and not summary.ok
    assert cache.complete_studies() == {"1.2.3": 2, "1.2.7": 2}
    assert cache.staged("1.2.4") == 2 and cache.partial() == ["1.2.4", "1.2.6"]
    assert set(cache.ledger()) == {"1.2.3", "1.2.7"}
    assert not (settings.cache_dir / "9.9.9").exists()
    assert (settings.cache_dir / "labels.csv").read_text() == "study_instance_uid,label\n1.2.3,1\n"


@pytest.mark.parametrize("uid", ["../../etc", "1.2/3", "", "1." + "2" * 70, "1..2"])
def test_uids_from_the_network_never_make_a_path(tmp_path: Path, uid: str) -> None:
    with pytest.raises(DataError, match="not a valid DICOM UID"):
        instance_path(tmp_path, "1.2.3", uid, "1.2.3.4")


def test_the_saved_query_is_checked_again_locally() -> None:
    query = SavedQuery("MR", "", "MR HE?D*", "20240101", "20241231")
    hit = StudyHit("1.2", 3, ("MR", "SEG"), "MR HEAD plain", "20240601")
    assert matches(hit, query)
    assert not matches(StudyHit("1.2", 3, ("CT",), "MR HEAD", "20240601"), query)
    assert not matches(StudyHit("1.2", 3, ("MR",), "mr head", "20240601"), query)
    assert not matches(StudyHit("1.2", 3, ("MR",), "MR HEAD", "20250101"), query)


def test_a_synced_study_replaces_a_pushed_one_whole(tmp_path: Path) -> None:
    # Prepare: `site listen` filed two instances of a study; sync staged all three
    cache = PacsCache(tmp_path)
    pushed = [instance_path(tmp_path, "1.2.3", "1.2.3.1", f"1.2.3.1.{i}") for i in (1, 2)]
    for path in pushed:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"pushed")
    for i in (1, 2, 3):
        cache.stage("1.2.3", "1.2.3.1", f"1.2.3.1.{i}", b"synced")

    # Execute
    committed = cache.commit("1.2.3", 3, "radiology")

    # Assert: the cache holds the synced study only, nothing left aside or staged
    assert committed
    files = sorted(p for p in (tmp_path / "1.2.3").rglob("*") if p.is_file())
    assert [p.name for p in files] == [f"1.2.3.1.{i}.dcm" for i in (1, 2, 3)]
    assert {p.read_bytes() for p in files} == {b"synced"}
    assert cache.partial() == [] and not (cache.state / "replaced" / "1.2.3").exists()
    assert cache.ledger()["1.2.3"]["instances"] == 3


def test_site_start_trains_on_the_pacs_cache_without_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: a site kit, a PACS file, and the daemon replaced by a recorder
    from server.provision import provision

    fed = tmp_path / "federation.toml"
    fed.write_text('[server]\naddress = "127.0.0.1:1"\n[sites]\nnames = ["site-a", "site-b"]\n')
    provision(fed, tmp_path / "kits")
    (tmp_path / "pacs.toml").write_text(GOOD)
    started: dict[str, object] = {}

    def record(kit: object, data: Path, device: str, **options: object) -> int:
        started.update(data=data, node_config=options["node_config"])
        return 0

    monkeypatch.setattr("client.daemon.run_site", record)

    # Execute
    code = main(
        ["site", "start", "--kit", str(tmp_path / "kits" / "site-a"),
         "--pacs-config", str(tmp_path / "pacs.toml"), "--state-dir", str(tmp_path / "state")]
    )  # fmt: skip

    # Assert: the data folder is the cache; no PACS setting goes into the node config
    assert code == 0
    assert started["data"] == (tmp_path / "cache").resolve()
    assert started["node_config"] == {}


def test_a_second_sync_on_the_same_cache_is_refused(tmp_path: Path) -> None:
    # Prepare: one sync holds the cache
    path = tmp_path / "pacs.toml"
    path.write_text(GOOD.replace('labels-csv = "labels.csv"\n', ""))
    settings = load_pacs_settings(path)

    # Execute / Assert: a second one is refused before it asks the PACS anything
    refused = pytest.raises(ConfigError, match="another `medfleet site sync`")
    with PacsCache(settings.cache_dir).syncing(), refused:
        sync_pacs(settings, "radiology", remote=_FakePacs())
    assert PacsCache(settings.cache_dir).ledger() == {}
    assert sync_pacs(settings, "radiology", remote=_FakePacs()).retrieved == 2
