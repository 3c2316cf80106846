"""'Safe to send' is a property of the error type: only MedFleetError's public text travels."""

from __future__ import annotations

import ast
import importlib
import inspect
import pickle
import pkgutil
import re
from pathlib import Path

import pytest
from flwr.app import Context, Message, RecordDict
from flwr.common import MessageType

from client.mods import privacy_guard_mod
from shared.errors import (
    ConfigError,
    DataError,
    MedFleetError,
    ProvisioningError,
    reason_for_server,
    scrub_paths,
)
from shared.kit import check_private_key, read_kit_toml, require_file

REPO = Path(__file__).resolve().parents[2]
SECRET_PATH = "/srv/pacs/HOLLOWAY^CLEMENTINE/IM00042.dcm"
SECRET_VALUE = "HOLLOWAY^CLEMENTINE^R"
#: Packages whose code runs at a site or in both roles (server/ runs only at the coordinator).
SITE_PACKAGES = ("shared", "client", "simulations")
#: Raise sites that format a path or a foreign error into a MedFleetError message, each
#: kept on purpose: site-admin commands that run outside the ClientApp (their errors go to
#: the admin's terminal, never into a reply), or library text that holds no site data.
ALLOWED = {
    ("client/daemon.py", "data_dir"),
    ("client/daemon.py", "err"),
    ("client/state_lock.py", "self.state_dir"),
    ("client/approval.py", "err"),
    ("client/approval.py", "path"),
    ("client/approval.py", "self.path"),
    ("shared/privacy.py", "err"),  # the DP accountant's ValueError: numbers only
    ("shared/tasks/__init__.py", "err"),  # MONAI's "did you mean" over task names
}
_PATHLIKE = re.compile(
    r"(^|_)(path|paths|dir|dirs|file|files|folder|root|kit|out|home|dest|src)($|_)", re.I
)
_EXCEPTION_NAMES = {"err", "exc", "e", "error", "site"}


pytestmark = pytest.mark.usefixtures("flower_task_identity")


def _reply_reason(err: BaseException) -> str:
    def failing(msg: Message, ctx: Context) -> Message:
        raise err

    ctx = Context(run_id=1, node_id=1, node_config={}, state=RecordDict(), run_config={})
    reply = privacy_guard_mod(Message(RecordDict(), 1, MessageType.TRAIN), ctx, failing)
    assert reply.has_error()
    return str(reply.error.reason)


def test_local_detail_stays_out_of_the_public_text_but_in_str() -> None:
    # Prepare
    err = DataError("DICOM file is truncated; re-export it", local=SECRET_PATH)

    # Execute
    public, local_text, sent = err.public, str(err), _reply_reason(err)

    # Assert
    assert public == "DICOM file is truncated; re-export it"
    assert SECRET_PATH in local_text  # the site admin still sees which file
    assert SECRET_PATH not in sent and "HOLLOWAY" not in sent
    assert sent.startswith("DataError: DICOM file is truncated; re-export it (site log ")


def test_a_path_written_into_a_message_by_mistake_is_scrubbed() -> None:
    # Prepare
    err = ConfigError(f"cannot open '{SECRET_PATH}' or C:\\PACS\\x.dcm now")

    # Execute
    sent = _reply_reason(err)

    # Assert
    assert "/srv" not in sent and "HOLLOWAY" not in sent and "PACS" not in sent
    assert "cannot open '<path>' or <path> now" in sent


def test_foreign_errors_travel_as_their_class_name_and_a_log_reference(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Prepare
    err = FileNotFoundError(2, "No such file", SECRET_PATH)

    # Execute
    with caplog.at_level("ERROR", logger="medfleet.site"):
        sent = _reply_reason(err)

    # Assert
    ref = re.search(r"site log ([0-9a-f]{12})", sent)
    assert ref is not None and sent.startswith("FileNotFoundError at the site")
    assert SECRET_PATH not in sent and "No such file" not in sent
    logged = caplog.text
    assert ref[1] in logged and SECRET_PATH in logged  # the full text stays in the site log


def test_errors_keep_their_local_detail_across_processes() -> None:
    # Execute (Ray and multiprocessing pickle exceptions)
    copy = pickle.loads(pickle.dumps(ProvisioningError("kit is incomplete", local=SECRET_PATH)))

    # Assert
    assert copy.public == "kit is incomplete" and copy.local == SECRET_PATH


def test_scrub_paths_keeps_text_without_separators() -> None:
    assert (
        scrub_paths("config key 'lr' must be > 0, got -1") == "config key 'lr' must be > 0, got -1"
    )
    assert scrub_paths("see ./logs/x.log and ~/kit") == "see <path> and <path>"


def test_kit_errors_name_the_file_kind_publicly_and_the_path_locally(tmp_path: Path) -> None:
    # Prepare
    key = tmp_path / "HOLLOWAY-kit" / "auth.key"
    key.parent.mkdir()
    bad_toml = tmp_path / "HOLLOWAY-kit" / "site.toml"
    bad_toml.write_text("[site\n")

    # Execute
    errors = []
    for call in (lambda: require_file(key, "private key"), lambda: read_kit_toml(bad_toml)):
        with pytest.raises(ProvisioningError) as caught:
            call()
        errors.append(caught.value)
    key.write_text("k")
    key.chmod(0o644)
    with pytest.raises(ProvisioningError) as caught:
        check_private_key(key)
    errors.append(caught.value)

    # Assert
    for err in errors:
        assert "HOLLOWAY" not in err.public and str(tmp_path) not in err.public
        assert str(tmp_path) in str(err)  # the admin's own terminal shows where
    assert "chmod 600" in errors[2].public and "0644" in errors[2].public


def _project_exception_classes() -> list[type[BaseException]]:
    classes: dict[str, type[BaseException]] = {}
    for package in ("shared", "client", "server", "simulations"):
        root = importlib.import_module(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            module = importlib.import_module(info.name)
            for _, cls in inspect.getmembers(module, inspect.isclass):
                if issubclass(cls, BaseException) and cls.__module__.split(".")[0] == package:
                    classes[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return list(classes.values())


def test_every_project_exception_class_is_safe_or_scrubbed() -> None:
    # Prepare
    classes = _project_exception_classes()
    assert MedFleetError in classes and DataError in classes  # the walk finds them
    assert any(not issubclass(c, MedFleetError) for c in classes)  # and foreign-typed ones

    for cls in classes:
        # Execute: the worst message each could carry, built without its own __init__
        err = cls.__new__(cls)
        err.args = (f"failed on {SECRET_PATH} for {SECRET_VALUE}",)
        if isinstance(err, MedFleetError):
            err.local = SECRET_PATH
        sent = _reply_reason(err)

        # Assert: safe types send their scrubbed message, any other type only its name
        assert "/srv/pacs" not in sent and "IM00042" not in sent, cls
        if isinstance(err, MedFleetError):
            assert sent.startswith(f"{cls.__name__}: failed on <path>"), sent
        else:
            assert SECRET_VALUE not in sent and sent.startswith(f"{cls.__name__} at the site")


def _unsafe_formatting(call: ast.Call) -> list[str]:
    """Formatted values of a message that look like a path or a foreign error's text."""
    found = []
    for node in ast.walk(call.args[0]) if call.args else []:
        if isinstance(node, ast.FormattedValue):
            value = node.value
            while isinstance(value, ast.Call):
                value = value.func
            last = value.attr if isinstance(value, ast.Attribute) else getattr(value, "id", "")
            unsafe = bool(_PATHLIKE.search(last)) or last in _EXCEPTION_NAMES
            if last and not last.isupper() and unsafe:
                found.append(ast.unparse(node.value))
    return found


def _error_names() -> set[str]:
    return {c.__name__ for c in _project_exception_classes() if issubclass(c, MedFleetError)}


def test_no_site_code_formats_a_path_or_foreign_error_into_a_public_message() -> None:
    # Prepare
    names = _error_names()
    findings = set()

    # Execute
    for package in SITE_PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            rel = path.relative_to(REPO).as_posix()
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call):
                    func = node.exc.func
                    name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                    if name in names:
                        findings |= {(rel, expr) for expr in _unsafe_formatting(node.exc)}

    # Assert: paths go to `local=`, foreign error text too
    assert findings <= ALLOWED, sorted(findings - ALLOWED)


def test_the_source_check_finds_a_path_in_a_message() -> None:
    # Prepare: the pattern the check exists for
    tree = ast.parse('raise DataError(f"cannot read {path}: {err}", local=str(path))')
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call))

    # Execute / Assert
    assert _unsafe_formatting(call) == ["path", "err"]
    assert reason_for_server(DataError("x", local="/a/b"), "r1") == "DataError: x (site log r1)"
