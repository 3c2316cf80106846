"""Cross-site evaluation: the names both apps use, and the settings it refuses at the door."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from shared.errors import ConfigError

if TYPE_CHECKING:
    from shared.config import RunConfig

__all__ = [
    "GLOBAL",
    "MAIN_METRICS",
    "MODEL_KEY",
    "check_cross_site",
    "lower_is_better",
    "main_metric",
]

#: The table's name of the final global model (or of the model file an evaluation-only
#: run scores); a site's last local model is named after the site.
GLOBAL = "global"
#: Key of an evaluate instruction's config naming the model sent: GLOBAL or a site's name.
MODEL_KEY = "cross-site-model"
#: The score a cross-site table shows, the first the sites sent: classification's AUC,
#: segmentation's mean Dice, the GAN's Frechet distance, detection's FROC CPM; else the
#: validation loss.
MAIN_METRICS = ("auc", "dice", "fd", "cpm")
#: Scores where lower is better, besides the losses.
_LOWER_IS_BETTER = ("fd", "fd_real", "mmd", "hd95")


def main_metric(scores: Mapping[str, Mapping[str, Mapping[str, Any]]]) -> str:
    """The metric a table of `scores` ({model: {site: metrics}}) is summed up by."""
    keys = {key for per_site in scores.values() for m in per_site.values() for key in m}
    return next((key for key in MAIN_METRICS if key in keys), "loss")


def lower_is_better(metric: str) -> bool:
    """Whether a smaller value of `metric` is the better one (losses, distances)."""
    return metric.endswith("loss") or metric in _LOWER_IS_BETTER


def check_cross_site(run: RunConfig) -> None:
    """Refuse cross-site and evaluation-only settings that cannot hold, naming the keys.

    Raises
    ------
    ConfigError
        For zero rounds without a model to evaluate, a model to evaluate with training
        rounds or a resumed run, and `cross-site-local` where a site's own model must
        not leave it (SecAgg+, differential privacy) or there is none (evaluation only).
    """
    model = str(run.option("evaluate-model"))
    if not model and run.num_rounds == 0:
        raise ConfigError(
            "config key 'num-server-rounds' = 0 trains nothing: set it to 1 or more, or give "
            "'evaluate-model' = PATH for an evaluation-only run (medfleet sim --evaluate-only)"
        )
    if model and run.num_rounds != 0:
        raise ConfigError(
            f"config key 'evaluate-model' asks for an evaluation-only run, which trains no "
            f"rounds, but 'num-server-rounds' = {run.num_rounds}: set 'num-server-rounds' = 0 "
            "(--evaluate-only does), or leave 'evaluate-model' empty to train"
        )
    if model and run.resume_from:
        raise ConfigError(
            "config keys 'evaluate-model' and 'resume-from' do not go together: an "
            "evaluation-only run has no rounds to resume; drop one of them"
        )
    if bool(run.option("cross-site-local")):
        _check_local_models(run, bool(model))


def _check_local_models(run: RunConfig, evaluate_only: bool) -> None:
    """`cross-site-local` sends each site's own model to the others: refused where it may not."""
    if evaluate_only:
        raise ConfigError(
            "config key 'cross-site-local' scores the sites' last local models, and an "
            "evaluation-only run ('evaluate-model') trains none: drop 'cross-site-local'"
        )
    if run.secagg.enabled:
        raise ConfigError(
            "config key 'cross-site-local' = true needs each site's own model, but "
            "'secagg' = true shows the server only their sum (that is its point): turn off "
            "'cross-site-local' (the global model is still scored at every site) or 'secagg'"
        )
    mode = str(run.option("dp"))
    if mode != "off":
        raise ConfigError(
            f"config key 'cross-site-local' = true is refused with 'dp' = '{mode}': it sends "
            "each site's own model on to the other sites, and a DP run releases only the "
            "global model: turn off 'cross-site-local' (the global model is still scored at "
            "every site) or set 'dp' = 'off'"
        )
