"""The shared local loop: loss falls, clipping, FedProx, seeding, AMP choice, the task template."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from shared.config import RunConfig
from shared.errors import ConfigError
from shared.tasks.base import RoundResult, SiteData, Task, TrainSettings
from shared.tasks.loop import autocast_dtype, prepare_model, proximal_term, train_local

CPU = torch.device("cpu")


def settings(**kw: Any) -> TrainSettings:
    base: dict[str, Any] = dict(local_epochs=1, batch_size=8, lr=0.1, seed=0, device=CPU)
    base.update(kw)
    return TrainSettings(**base)


def blobs(n: int = 64) -> TensorDataset:
    """Two well separated 2D Gaussian blobs, labels 0 and 1."""
    gen = torch.Generator().manual_seed(0)
    labels = torch.arange(n) % 2
    points = torch.randn(n, 2, generator=gen) * 0.5 + (labels[:, None] * 2 - 1) * 2.0
    return TensorDataset(points, labels)


def ce_loss(model: nn.Module, batch: Any) -> tuple[torch.Tensor, int]:
    device = next(model.parameters()).device
    x, y = (t.to(device) for t in batch)
    return nn.functional.cross_entropy(model(x), y), len(y)


def loader(dataset: TensorDataset, batch_size: int = 8) -> Callable[[], DataLoader]:
    return lambda: DataLoader(dataset, batch_size=batch_size, shuffle=True)


def sgd(lr: float) -> Callable[[nn.Module], torch.optim.Optimizer]:
    return lambda model: torch.optim.SGD(model.parameters(), lr=lr)


def linear() -> nn.Linear:
    torch.manual_seed(1)
    return nn.Linear(2, 2)


def flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_loss_falls_on_a_separable_problem() -> None:
    # Prepare
    model, data = linear(), blobs()
    # Execute
    first = train_local(model, loader(data), ce_loss, sgd(0.1), settings())
    later = train_local(model, loader(data), ce_loss, sgd(0.1), settings(local_epochs=5))
    # Assert
    x, y = data.tensors
    accuracy = float((model(x).argmax(1) == y).float().mean())
    assert later < 0.5 * first
    assert accuracy == 1.0


def test_loss_is_the_example_weighted_mean_of_batch_losses() -> None:
    # Prepare: a batch of 3 with loss 1 and a batch of 1 with loss 5.
    model = linear()
    batches = [(3, 1.0), (1, 5.0)]

    def constant(net: nn.Module, batch: tuple[int, float]) -> tuple[torch.Tensor, int]:
        size, value = batch
        return next(net.parameters()).sum() * 0 + value, size

    # Execute
    loss = train_local(model, lambda: batches, constant, sgd(0.1), settings(local_epochs=2))
    # Assert: (3 * 1 + 1 * 5) / 4, not the batch mean 3.0
    assert loss == pytest.approx(2.0)


def one_step_update(clip: float) -> tuple[float, float]:
    """SGD lr=1 on one batch: (update norm, unclipped gradient norm computed separately)."""
    data = blobs(8)
    model = linear()
    start = flat(model)
    probe = linear()
    ce_loss(probe, data.tensors)[0].backward()
    grads = [p.grad.flatten() for p in probe.parameters() if p.grad is not None]
    grad_norm = float(torch.cat(grads).norm())
    train_local(model, loader(data), ce_loss, sgd(1.0), settings(grad_clip_norm=clip))
    return float((flat(model) - start).norm()), grad_norm


def test_gradient_clipping_bounds_the_step() -> None:
    # Execute: with SGD at lr=1 the update is minus the (clipped) gradient.
    free, grad_norm = one_step_update(clip=0.0)
    clipped, _ = one_step_update(clip=0.05)
    # Assert
    assert free == pytest.approx(grad_norm, rel=1e-5)
    assert grad_norm > 0.1
    assert clipped == pytest.approx(0.05, rel=1e-4)


def test_proximal_term_matches_its_formula() -> None:
    # Prepare
    w = [nn.Parameter(torch.tensor([1.0, 2.0])), nn.Parameter(torch.tensor([[3.0]]))]
    g = [torch.tensor([0.0, 0.0]), torch.tensor([[1.0]])]
    # Execute
    value = proximal_term(w, g, mu=0.5)
    # Assert: 0.5 / 2 * (1 + 4 + 4)
    assert float(value.detach()) == pytest.approx(2.25)


def test_a_strong_proximal_term_keeps_the_weights_at_the_global_ones() -> None:
    # Prepare
    data = blobs()

    def distance(mu: float) -> float:
        model = linear()
        start = flat(model)
        train_local(
            model, loader(data), ce_loss, sgd(0.01), settings(local_epochs=10, proximal_mu=mu)
        )
        return float((flat(model) - start).norm())

    # Execute
    free, held = distance(0.0), distance(100.0)
    # Assert: at lr * mu = 1 every step lands at w_global - lr * grad (0.6 vs 0.02 here).
    assert free > 0.5
    assert held < 0.05 * free


def test_same_seed_gives_bit_identical_weights_and_another_seed_differs() -> None:
    # Prepare
    data = blobs()

    def trained(seed: int) -> torch.Tensor:
        torch.manual_seed(0)  # the same global weights each time
        model = nn.Sequential(nn.Linear(2, 8), nn.Dropout(0.3), nn.Linear(8, 2))
        run = settings(seed=seed, server_round=3, amp=True)
        train_local(model, loader(data), ce_loss, sgd(0.1), run)
        return flat(model)

    # Execute
    first, again, other = trained(4), trained(4), trained(5)
    # Assert: shuffling and dropout follow seed + round
    assert torch.equal(first, again)
    assert not torch.equal(first, other)


def test_prepare_model_seeds_moves_and_sets_train_mode() -> None:
    # Prepare
    model = nn.Linear(2, 2).eval()
    # Execute
    prepare_model(model, settings(seed=10, server_round=2))
    drawn = torch.rand(3)
    # Assert
    torch.manual_seed(12)
    assert torch.equal(drawn, torch.rand(3))
    assert model.training and model.weight.device == CPU


def test_amp_is_off_on_cpu_and_bf16_or_fp16_on_cuda(monkeypatch: pytest.MonkeyPatch) -> None:
    # Prepare
    cuda = torch.device("cuda")
    # Execute / Assert
    assert autocast_dtype(CPU, amp=True) is None
    assert autocast_dtype(cuda, amp=False) is None
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert autocast_dtype(cuda, amp=True) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: False)
    assert autocast_dtype(cuda, amp=True) is torch.float16


def test_amp_setting_changes_nothing_on_cpu() -> None:
    # Prepare
    data = blobs()
    with_amp, without = linear(), linear()
    # Execute
    train_local(with_amp, loader(data), ce_loss, sgd(0.1), settings(amp=True))
    train_local(without, loader(data), ce_loss, sgd(0.1), settings(amp=False))
    # Assert
    assert torch.equal(flat(with_amp), flat(without))


@pytest.mark.parametrize(
    ("key", "kw"),
    [("proximal_mu", {"proximal_mu": -0.1}), ("grad-clip-norm", {"grad_clip_norm": -1.0})],
)
def test_settings_reject_negative_values(key: str, kw: dict[str, float]) -> None:
    # Execute / Assert
    with pytest.raises(ConfigError, match=f"'{key}'"):
        settings(**kw)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_amp_training_on_cuda_lowers_the_loss() -> None:
    # Prepare
    model, data = linear(), blobs()
    run = settings(device=torch.device("cuda"), amp=True)
    # Execute
    first = train_local(model, loader(data), ce_loss, sgd(0.1), run)
    later = train_local(model, loader(data), ce_loss, sgd(0.1), replace(run, local_epochs=5))
    # Assert
    assert later < first
    assert next(model.parameters()).dtype == torch.float32


class ToyTask(Task):
    """A supervised task that supplies only `batch_loss`; the template does the rest."""

    name = "toy"

    def build_model(self) -> nn.Module:
        return linear()

    def load_site(self, site_dir: Path, cache_dir: Path | None = None) -> SiteData:
        x, y = blobs().tensors
        items = [{"x": xi, "y": yi} for xi, yi in zip(x, y, strict=True)]
        return SiteData(name="toy", train=items, val=items)

    def batch_loss(
        self, model: nn.Module, batch: Any, data: SiteData, settings: TrainSettings
    ) -> tuple[torch.Tensor, int]:
        return nn.functional.cross_entropy(model(batch["x"]), batch["y"]), len(batch["y"])

    def evaluate(self, model: nn.Module, data: SiteData, settings: TrainSettings) -> RoundResult:
        return RoundResult(0, {})


def test_train_round_template_runs_the_shared_loop_on_task_hooks() -> None:
    # Prepare
    task = ToyTask(RunConfig())
    data = task.load_site(Path("unused"))
    model, twin = task.build_model(), task.build_model()
    run = settings(local_epochs=3, lr=0.05, proximal_mu=0.1, grad_clip_norm=1.0)
    # Execute: the template against the loop called by hand with the default hooks
    result = task.train_round(model, data, run)
    expected = train_local(
        twin,
        lambda: task.train_loader(data, run),
        lambda net, batch: task.batch_loss(net, batch, data, run),
        lambda net: torch.optim.Adam(net.parameters(), lr=0.05),
        run,
    )
    # Assert
    assert result.num_examples == 64
    assert result.metrics == {"train_loss": expected}
    assert torch.equal(flat(model), flat(twin))


def test_a_task_without_batch_loss_names_the_missing_hook() -> None:
    # Prepare
    class NoLoss(ToyTask):
        name = "no-loss"
        batch_loss = Task.batch_loss  # type: ignore[assignment]

    task = NoLoss(RunConfig())
    # Execute / Assert
    with pytest.raises(NotImplementedError, match="batch_loss"):
        task.train_round(task.build_model(), task.load_site(Path("unused")), settings())


def test_a_task_without_predict_names_the_missing_hook() -> None:
    # Prepare
    task = ToyTask(RunConfig())
    # Execute / Assert
    with pytest.raises(NotImplementedError, match="'toy' does not define predict"):
        task.predict(task.build_model(), Path("unused"), settings())


def test_training_batches_are_pinned_for_cuda_only() -> None:
    # Prepare
    task, data = ToyTask(RunConfig()), ToyTask(RunConfig()).load_site(Path("unused"))
    # Execute
    on_cuda = task.train_loader(data, settings(device=torch.device("cuda")))
    on_cpu = task.train_loader(data, settings(device=torch.device("cpu")))
    # Assert
    assert (on_cuda.pin_memory, on_cpu.pin_memory) == (True, False)  # type: ignore[attr-defined]


def test_optimizer_option_picks_sgd_with_its_momentum() -> None:
    # Prepare
    from shared.config import RunConfig
    from shared.tasks import get_task
    from shared.tasks.base import TrainSettings

    run = RunConfig.from_mapping({"optimizer": "sgd", "momentum": 0.5, "lr": 0.02})
    task = get_task(run)
    settings = TrainSettings.from_run(run, torch.device("cpu"))
    # Execute
    optimizer = task.make_optimizer(torch.nn.Linear(2, 1), settings)
    adam = task.make_optimizer(
        torch.nn.Linear(2, 1), TrainSettings.from_run(RunConfig(), torch.device("cpu"))
    )
    # Assert
    assert type(optimizer) is torch.optim.SGD and type(adam) is torch.optim.Adam
    assert optimizer.defaults["momentum"] == 0.5 and optimizer.defaults["lr"] == 0.02
