"""Differential privacy settings and their budget: what `dp` asks for and what it spends.

Two mechanisms, one accountant (Opacus's RDP accountant, Mironov 2017):

- ``dp = client``: site-level DP (McMahan et al., 2018). Each site clips its update to
  ``dp-clip-norm`` (Flower's `fixedclipping_mod`) and sends it with weight 1; the server
  adds Gaussian noise of std ``dp-noise-multiplier * dp-clip-norm / k`` to the mean of
  the k updates (Flower's `DifferentialPrivacyClientSideFixedClipping`). One round is one
  Gaussian release; no amplification by sampling is claimed. Epsilon bounds what the
  released models reveal about whether any one site took part.
- ``dp = dp-sgd``: example-level DP at each site (Abadi et al., 2016) with Opacus: every
  example's gradient is clipped to ``dp-clip-norm``, Gaussian noise is added to every
  step, batches are Poisson-sampled. Epsilon bounds what the site's updates reveal about
  any one of its patients (images), over all rounds so far.

Both budgets are pure functions of the settings and the round number, so a resumed run
reports the same epsilon as one that never stopped.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.config import RunConfig

__all__ = ["DpConfig", "SiteDpSgd", "noise_for_epsilon", "rdp_epsilon"]

#: The name reported with every epsilon.
ACCOUNTANT = "RDP (Opacus)"


def rdp_epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """Epsilon at `delta` after `steps` Poisson-sampled Gaussian releases (Opacus RDP).

    Parameters
    ----------
    noise_multiplier : float
        Noise std over the sensitivity (clipping norm); 0 means no privacy (inf).
    sample_rate : float
        Probability that one example (or site) is in a step; 1 for no sampling.
    steps : int
        Releases composed.
    delta : float
        The delta of the (epsilon, delta) guarantee.
    """
    if steps <= 0:
        return 0.0
    if noise_multiplier <= 0:
        return math.inf
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, steps)]
    return float(accountant.get_epsilon(delta))


@functools.lru_cache(maxsize=64)
def noise_for_epsilon(target_epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    """The smallest noise multiplier whose `steps` releases spend at most `target_epsilon`.

    A pure function of its settings, searched once per setting: the server's budget of
    every round and each simulated site's every round ask for the same one again.
    """
    from opacus.accountants.utils import get_noise_multiplier

    try:
        return float(
            get_noise_multiplier(
                target_epsilon=target_epsilon,
                target_delta=delta,
                sample_rate=sample_rate,
                steps=steps,
                accountant="rdp",
                epsilon_tolerance=0.005,
            )
        )
    except ValueError as err:
        raise ConfigError(
            f"no noise reaches dp-target-epsilon={target_epsilon:g} at dp-delta={delta:g} "
            f"over {steps} steps: raise 'dp-target-epsilon' ({err})"
        ) from None


@dataclass(frozen=True)
class DpConfig:
    """The `dp-*` keys of a run."""

    mode: str = "off"
    noise_multiplier: float = 1.0
    target_epsilon: float = 0.0
    clip_norm: float = 1.0
    delta: float = 1e-5

    @classmethod
    def from_run(cls, run: RunConfig) -> DpConfig:
        """Read and type the `dp-*` keys."""
        return cls(
            mode=str(run.option("dp")),
            noise_multiplier=float(run.option("dp-noise-multiplier")),
            target_epsilon=float(run.option("dp-target-epsilon")),
            clip_norm=float(run.option("dp-clip-norm")),
            delta=float(run.option("dp-delta")),
        )

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def client_noise(self, num_rounds: int) -> float:
        """`dp = client`: the noise multiplier of every round (from the target, if set)."""
        if self.target_epsilon > 0:
            return noise_for_epsilon(self.target_epsilon, self.delta, 1.0, num_rounds)
        return self.noise_multiplier

    def client_epsilon(self, num_rounds: int, server_round: int) -> float:
        """`dp = client`: epsilon spent after `server_round` rounds."""
        return rdp_epsilon(self.client_noise(num_rounds), 1.0, server_round, self.delta)

    def for_site(
        self,
        num_examples: int,
        batch_size: int,
        local_epochs: int,
        num_rounds: int,
        steps_per_round: int | None = None,
    ) -> SiteDpSgd:
        """`dp = dp-sgd`: one site's DP-SGD parameters for its data size and schedule.

        A round is `local_epochs` passes of Poisson-sampled batches, or `steps_per_round`
        private steps when a task counts steps (the GAN).
        """
        if num_examples < 1:
            raise ConfigError("dp-sgd needs at least one training example at the site")
        rate = min(1.0, batch_size / num_examples)
        steps = steps_per_round or local_epochs * math.ceil(num_examples / batch_size)
        noise = self.noise_multiplier
        if self.target_epsilon > 0:
            noise = noise_for_epsilon(self.target_epsilon, self.delta, rate, steps * num_rounds)
        return SiteDpSgd(noise, self.clip_norm, rate, steps, self.delta)


@dataclass(frozen=True)
class SiteDpSgd:
    """DP-SGD at one site: Opacus's noise and clipping, and the steps one round takes."""

    noise_multiplier: float
    max_grad_norm: float
    sample_rate: float
    steps_per_round: int
    delta: float

    def epsilon(self, server_round: int) -> float:
        """Epsilon after `server_round` rounds (an upper bound if the site missed some)."""
        return rdp_epsilon(
            self.noise_multiplier, self.sample_rate, self.steps_per_round * server_round, self.delta
        )

    def metrics(self, server_round: int) -> dict[str, float]:
        """What the site reports (numbers only): its epsilon so far and its noise."""
        return {
            "dp_epsilon": self.epsilon(server_round),
            "dp_noise_multiplier": self.noise_multiplier,
        }


def quiet_opacus() -> None:
    """Opacus warns on every private step about secure RNG and full backward hooks."""
    warnings.filterwarnings("ignore", module=r"opacus(\.|$)")
    warnings.filterwarnings("ignore", message=r".*[Ss]ecure RNG.*")
    warnings.filterwarnings("ignore", message=r".*full_backward_hook.*")
