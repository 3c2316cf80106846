"""FedBN: a site keeps its own normalisation layers between rounds; the rest is global."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from flwr.app import RecordDict
from torch import nn

from client.site_client import LOCAL_NORM_RECORD, SiteClient
from shared.config import RunConfig, SiteConfig
from shared.tasks.base import RoundResult, SiteData, Task, TrainSettings
from shared.weights import get_weights, norm_state_keys


class _NormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv1d(1, 2, 1)
        self.bn = nn.BatchNorm1d(2)
        self.head = nn.Linear(2, 1)


class _Task(Task):
    """Training adds 1 to every float entry and records what the model held before."""

    name = "fake"

    def __init__(self, config: RunConfig) -> None:
        super().__init__(config)
        self.seen: list[dict[str, torch.Tensor]] = []

    def build_model(self) -> nn.Module:
        torch.manual_seed(0)
        return _NormNet()

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        raise NotImplementedError

    def _record(self, model: nn.Module) -> None:
        self.seen.append({k: v.clone() for k, v in model.state_dict().items()})

    def train_round(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        self._record(model)
        with torch.no_grad():
            for value in model.state_dict().values():
                if value.is_floating_point():
                    value.add_(1.0)
        return RoundResult(4, {"train_loss": 0.0})

    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        self._record(model)
        return RoundResult(2, {"loss": 0.0})


def _client(strategy: str, state: RecordDict, **options: Any) -> tuple[SiteClient, _Task]:
    run = RunConfig.from_mapping({"strategy": strategy, **options})
    task = _Task(run)
    site = SiteConfig(name="site-1", data_dir=Path("unused"), device="cpu")
    data = SiteData(name="site-1", train=[0] * 4, val=[0] * 2)
    return SiteClient(task, data, run, site, state=state), task


def _global(model: nn.Module, offset: float) -> list[np.ndarray]:
    return [a + offset if a.dtype.kind == "f" else a for a in get_weights(model)]


def test_norm_state_keys_name_batch_group_and_layer_norm_and_skip_stateless_ones() -> None:
    # Prepare
    from monai.networks.nets import UNet

    from shared.models import LesionCNN

    unet = UNet(2, 1, 2, channels=(4, 8), strides=(2,), norm="instance")
    # Execute / Assert
    assert norm_state_keys(_NormNet()) == [
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
    ]
    assert len(norm_state_keys(LesionCNN(channels=(4, 8)))) == 4  # 2 GroupNorms x (w, b)
    assert norm_state_keys(unet) == []


def test_fedbn_site_trains_its_own_norm_layers_over_the_global_rest() -> None:
    # Prepare: round 1 from the initial model, round 2 from a global model moved by +5
    state = RecordDict()
    client, task = _client("fedbn", state)
    start = _global(client.model, 0.0)
    # Execute
    sent, _, _ = client.fit(start, {"server-round": 1})
    round_2 = _global(client.model, 5.0)
    sent_2, _, _ = client.fit(round_2, {"server-round": 2})
    client.evaluate(round_2, {"server-round": 2})
    # Assert: norm layers are the site's latest trained ones, everything else the server's
    keys = list(client.model.state_dict())
    local = set(norm_state_keys(client.model))
    assert LOCAL_NORM_RECORD in state
    for seen, own in ((task.seen[1], sent), (task.seen[2], sent_2)):
        for index, key in enumerate(keys):
            expected = own[index] if key in local else round_2[index]
            np.testing.assert_array_equal(seen[key].numpy(), expected, err_msg=key)


def test_fedavg_site_takes_every_layer_from_the_server() -> None:
    # Prepare
    state = RecordDict()
    client, task = _client("fedavg", state)
    # Execute
    client.fit(_global(client.model, 0.0), {"server-round": 1})
    round_2 = _global(client.model, 5.0)
    client.fit(round_2, {"server-round": 2})
    # Assert
    assert LOCAL_NORM_RECORD not in state
    for index, value in enumerate(task.seen[1].values()):
        np.testing.assert_array_equal(value.numpy(), round_2[index])


def test_local_norm_key_gives_fedbn_with_another_aggregation() -> None:
    # Prepare
    state = RecordDict()
    client, task = _client("fedprox", state, **{"local-norm": True})
    # Execute
    sent, _, _ = client.fit(_global(client.model, 0.0), {"server-round": 1})
    client.fit(_global(client.model, 5.0), {"server-round": 2})
    # Assert
    np.testing.assert_array_equal(task.seen[1]["bn.running_mean"].numpy(), sent[3])


def test_cross_site_scores_another_sites_model_as_sent_and_the_global_one_as_fedbn() -> None:
    # Prepare: the site trained once, so it holds its own normalisation layers
    from shared.cross_site import GLOBAL, MODEL_KEY

    client, task = _client("fedbn", RecordDict())
    sent, _, _ = client.fit(_global(client.model, 0.0), {"server-round": 1})
    other = _global(client.model, 7.0)  # another site's last local model
    keys = list(client.model.state_dict())
    local = set(norm_state_keys(client.model))

    # Execute
    client.evaluate(other, {"server-round": 1, MODEL_KEY: "site-2"})
    client.evaluate(other, {"server-round": 1, MODEL_KEY: GLOBAL})

    # Assert: site-2's model exactly; the global one under this site's own norm layers
    as_sent, as_global = task.seen[-2], task.seen[-1]
    for index, key in enumerate(keys):
        np.testing.assert_array_equal(as_sent[key].numpy(), other[index], err_msg=key)
        expected = sent[index] if key in local else other[index]
        np.testing.assert_array_equal(as_global[key].numpy(), expected, err_msg=key)
