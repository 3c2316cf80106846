"""SiteClient: a Flower NumPyClient that runs one task on one site's private data."""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import numpy as np
import torch
from flwr.app import ArrayRecord, RecordDict
from flwr.client import NumPyClient
from flwr.common import NDArrays, Scalar

from client.fault_injection import Attack, InjectedRaise, parse_attack
from shared.config import RunConfig, SiteConfig, resolve_device
from shared.cross_site import GLOBAL, MODEL_KEY
from shared.log_context import site_round
from shared.scaffold import DriftCorrection, split_control
from shared.tasks.base import SiteData, Task, TrainSettings
from shared.weights import check_finite, norm_state_keys

__all__ = ["CONTROL_RECORD", "LOCAL_NORM_RECORD", "SiteClient"]

logger = logging.getLogger("medfleet.site")

#: Key of the site's own normalisation layers (FedBN) in the node's persistent state.
LOCAL_NORM_RECORD = "medfleet.local-norm"
#: Key of the site's SCAFFOLD control variate ``c_i`` in the node's persistent state.
CONTROL_RECORD = "medfleet.scaffold-control"


class SiteClient(NumPyClient):
    """Trains and evaluates the global model at one site; returns weights and scores only.

    `state` is the node's state that Flower keeps between the rounds of a run (the
    ClientApp's ``context.state``); with FedBN (`RunConfig.local_norm`) the site's own
    normalisation layers live there and replace the averaged ones it receives, and with
    SCAFFOLD (`strategy = scaffold`) the site's control variate does.
    """

    def __init__(
        self,
        task: Task,
        data: SiteData,
        run: RunConfig,
        site: SiteConfig,
        dump_dir: Path | None = None,
        state: RecordDict | None = None,
    ) -> None:
        self.task = task
        self.data = data
        self.run = run
        self.site = site
        self.device = torch.device(resolve_device(site.device))
        self.model = task.build_model()
        self.dump_dir = dump_dir
        self.state = state if state is not None else RecordDict()

    def _load_global(self, parameters: NDArrays, own_norm: bool = True) -> None:
        """Global weights in; with FedBN the site's own normalisation layers over them.

        `own_norm` False loads the weights exactly as sent (another site's local model
        in cross-site evaluation, scored as that site trained it).
        """
        self.task.set_weights(self.model, parameters)
        if not own_norm or not self.run.local_norm or LOCAL_NORM_RECORD not in self.state:
            return
        record = self.state[LOCAL_NORM_RECORD]
        assert isinstance(record, ArrayRecord)
        kept = record.to_torch_state_dict()
        if set(kept) != set(norm_state_keys(self.model)):
            logger.warning("local normalisation state does not fit the model: using global")
            return
        self.model.load_state_dict(kept, strict=False)
        logger.debug("FedBN: the site's own %d normalisation tensors replace the global", len(kept))

    def _keep_local_norm(self) -> None:
        """With FedBN, store the trained normalisation layers in the node's state."""
        if not self.run.local_norm:
            return
        keys = norm_state_keys(self.model)
        if not keys:  # the server refuses such a run before round 1
            return
        state = self.model.state_dict()
        kept = {k: state[k].detach().cpu().clone() for k in keys}
        self.state[LOCAL_NORM_RECORD] = ArrayRecord(torch_state_dict=kept)

    def _settings(self, config: dict[str, Scalar]) -> TrainSettings:
        return TrainSettings.from_run(
            self.run,
            self.device,
            local_epochs=int(config.get("local-epochs", self.run.local_epochs)),
            lr=float(config.get("lr", self.run.lr)),
            server_round=int(config.get("server-round", 1)),
            # Flower's FedProx strategy puts `proximal_mu` in every fit instruction.
            proximal_mu=float(config.get("proximal_mu", 0.0)),
        )

    def get_parameters(self, config: dict[str, Scalar]) -> NDArrays:
        return self.task.get_weights(self.model)

    def _split(self, parameters: NDArrays) -> tuple[NDArrays, NDArrays | None]:
        """The global model and, with SCAFFOLD, the server's control variate after it."""
        if self.run.strategy != "scaffold":
            return parameters, None
        return split_control(parameters, len(self.model.state_dict()))

    def _local_control(self) -> NDArrays | None:
        """The site's SCAFFOLD control variate from earlier rounds (None at first)."""
        record = self.state.get(CONTROL_RECORD)
        return record.to_numpy_ndarrays() if isinstance(record, ArrayRecord) else None

    def fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        with site_round(self.site.name, _round(config), "fit"):
            return self._fit(parameters, config)

    def _fit(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[NDArrays, int, dict[str, Scalar]]:
        settings = self._settings(config)
        received, server_control = self._split(parameters)
        self._load_global(received)
        if server_control is not None:
            correction = DriftCorrection.for_model(
                self.model, server_control, self._local_control(), settings.lr
            )
            settings = dataclasses.replace(settings, scaffold=correction)
        result = self.task.train_round(self.model, self.data, settings)
        self._maybe_fail(settings.server_round)
        self._keep_local_norm()
        arrays = self._poisoned(received, self.task.get_weights(self.model))
        change = settings.scaffold.control_delta() if settings.scaffold is not None else []
        arrays = [*arrays, *change]
        check_finite(arrays, f"site '{self.site.name}' local update")
        if "secagg-max-weight" in config:
            from shared.secagg import check_update_fits

            # With dp = client every update is sent with weight 1 (client/dp.py).
            weight = 1 if settings.dp is not None and settings.dp.mode == "client" else None
            check_update_fits(
                arrays,
                weight or result.num_examples,
                float(config["secagg-max-weight"]),
                float(config["secagg-clipping-range"]),
            )
        if settings.scaffold is not None:  # kept only for an update that is sent
            self.state[CONTROL_RECORD] = ArrayRecord(settings.scaffold.new_local(change))
        if self.dump_dir is not None:
            self.dump_dir.mkdir(parents=True, exist_ok=True)
            path = self.dump_dir / f"round-{settings.server_round}.npz"
            # Debug/tests only: the update sent and the global arrays received (received_i).
            sent_to_us = {f"received_{i}": a for i, a in enumerate(parameters)}
            np.savez(path, *arrays, num_examples=result.num_examples, **sent_to_us)  # type: ignore[arg-type]
        logger.info(
            "round %d: trained on %d images (%s)",
            settings.server_round,
            result.num_examples,
            _fmt(result.metrics),
        )
        return arrays, result.num_examples, self._metrics(result.metrics, with_report=True)

    def _poisoned(self, received: NDArrays, arrays: NDArrays) -> NDArrays:
        """Fault injection for the robustness tests: only a simulated site ever attacks."""
        attack = parse_attack(str(self.run.option("debug-attack")))
        if not isinstance(attack, Attack) or attack.site != self.site.name:
            return arrays
        if not self.site.simulated:  # a deployed site never poisons, test fleet or not
            return arrays
        logger.warning("debug-attack: site %s sends a poisoned update", self.site.name)
        return attack.apply(received, arrays)

    def _maybe_fail(self, server_round: int) -> None:
        """Fault injection for the privacy tests: a test site's task raises (never a real one).

        A simulated site, or a deployed one whose admin set `debug-dump-dir` (test fleets).
        """
        fault = parse_attack(str(self.run.option("debug-attack")))
        if isinstance(fault, InjectedRaise) and (self.site.simulated or self.dump_dir):
            fault.check(self.site.name, server_round, self.site.data_dir)

    def evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        with site_round(self.site.name, _round(config), "evaluate"):
            return self._evaluate(parameters, config)

    def _evaluate(
        self, parameters: NDArrays, config: dict[str, Scalar]
    ) -> tuple[float, int, dict[str, Scalar]]:
        # Cross-site evaluation names a site's local model: scored as sent (see _load_global).
        self._load_global(parameters, own_norm=config.get(MODEL_KEY, GLOBAL) == GLOBAL)
        result = self.task.evaluate(self.model, self.data, self._settings(config))
        logger.info("validation on %d images: %s", result.num_examples, _fmt(result.metrics))
        loss = float(result.metrics.get("loss", 0.0))
        return loss, result.num_examples, self._metrics(result.metrics, with_report=False)

    def _metrics(self, metrics: dict[str, float], with_report: bool) -> dict[str, Scalar]:
        # Counts and scores only; the site's name is the one string that leaves.
        out: dict[str, Scalar] = {k: float(v) for k, v in metrics.items()}
        out["site"] = self.site.name
        if with_report:
            out.update({f"data_{k}": int(v) for k, v in self.data.report.items()})
        return out


def _fmt(metrics: dict[str, float]) -> str:
    # Scores only: the ROC (roc_tp_<i>, ...) and FROC counts would bury them in numbers.
    return ", ".join(
        f"{k}={v:.4g}" for k, v in metrics.items() if not k.startswith(("roc_", "froc_"))
    )


def _round(config: dict[str, Scalar]) -> int | None:
    """The server round a fit or evaluate instruction is for (None when not sent)."""
    value = config.get("server-round")
    return int(value) if isinstance(value, int | float) else None
