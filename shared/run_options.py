"""The run-wide config keys: training, federation, strategy, robustness, SecAgg+ and DP."""

from __future__ import annotations

from shared.schema import Option

__all__ = [
    "DP_MODES",
    "EVALUATION",
    "FEDERATION",
    "OPTIMIZERS",
    "PRIVACY",
    "ROBUSTNESS",
    "SECAGG",
    "STRATEGY",
    "STRATEGY_NAMES",
    "TRAINING",
]

#: Aggregation rules of `strategy`, Flower's own classes (see server/strategies.py).
STRATEGY_NAMES = (
    "fedavg",
    "fedavgm",
    "fedprox",
    "fedbn",
    "scaffold",
    "fedadagrad",
    "fedadam",
    "fedyogi",
    "fedmedian",
    "fedtrimmedavg",
    "krum",
    "bulyan",
)

#: Local optimisers of `optimizer` (the supervised loop; the GAN keeps its Adam pair).
OPTIMIZERS = ("adam", "sgd")

TRAINING = (
    # 0 only for an evaluation-only run (`evaluate-model`); RunConfig.validate checks that.
    Option("num-server-rounds", int, 5, "federated rounds", low=0, high=100_000),
    Option("local-epochs", int, 1, "local epochs per round", low=1, high=10_000),
    Option("batch-size", int, 16, "local batch size", low=1, high=65_536),
    Option("lr", float, 1e-3, "local learning rate", low=1e-8, high=10.0),
    Option("seed", int, 42, "random seed of models, splits and augmentation", low=0),
    Option("device", str, "auto", "auto, cpu or cuda[:N]"),
    Option("grad-clip-norm", float, 0.0, "clip local gradients to this L2 norm (0: off)", low=0),
    Option("amp", bool, True, "mixed precision on CUDA (ignored on CPU)"),
    Option(
        "optimizer",
        str,
        "adam",
        "local optimiser: adam, or sgd (with momentum)",
        choices=OPTIMIZERS,
    ),
    Option("momentum", float, 0.9, "sgd: momentum", low=0.0, high=0.999),
)

FEDERATION = (
    Option("fraction-evaluate", float, 1.0, "fraction of sites that validate", low=0, high=1),
    Option("min-sites", int, 2, "sites a round needs to count", low=1, high=100_000),
    Option(
        "round-timeout",
        float,
        3600.0,
        "seconds the server waits for the sites' replies to each request and for min-sites",
        low=1,
        high=7 * 86_400,
    ),
    Option("sim-data-root", str, "", "simulation: folder with one sub-folder per site"),
    Option("out-dir", str, "runs/flwr-run", "server-side folder of run.json and checkpoints"),
    Option("resume-from", str, "", "server-side run folder to continue from its last round"),
    Option(
        "tensorboard",
        bool,
        False,
        "also write every round's metrics as TensorBoard event files to out-dir/tensorboard",
    ),
)

EVALUATION = (
    Option(
        "cross-site-local",
        bool,
        False,
        "cross-site evaluation: also score each site's last local model at every site "
        "(not with secagg or dp)",
    ),
    Option(
        "evaluate-model",
        str,
        "",
        "server-side model file (or run folder) to score at every site instead of training "
        "(with num-server-rounds = 0)",
    ),
)

STRATEGY = (
    Option("strategy", str, "fedavg", "aggregation rule", choices=STRATEGY_NAMES),
    Option(
        "local-norm",
        bool,
        False,
        "FedBN: each site keeps its own normalisation layers between rounds (on with fedbn)",
    ),
    Option("proximal-mu", float, 0.01, "fedprox: weight of the proximal term", low=0, high=100),
    Option("server-lr", float, 0.01, "fedadam/fedyogi/fedadagrad/fedavgm: server step", low=1e-8),
    Option("server-momentum", float, 0.9, "fedavgm: server momentum", low=0, high=0.999),
    Option("fedopt-beta-1", float, 0.9, "fedadam/fedyogi: first-moment decay", low=0, high=0.999),
    Option(
        "fedopt-beta-2", float, 0.99, "fedadam/fedyogi: second-moment decay", low=0, high=0.9999
    ),
    Option("fedopt-tau", float, 1e-3, "fedadam/fedyogi/fedadagrad: adaptivity", low=1e-12, high=1),
    Option("trimmed-beta", float, 0.2, "fedtrimmedavg: fraction cut at each end", low=0, high=0.49),
    Option("num-malicious", int, 1, "krum/bulyan: sites assumed malicious", low=0, high=1000),
    Option("krum-keep", int, 0, "krum: updates averaged (0: Krum, >1: Multi-Krum)", low=0),
)

ROBUSTNESS = (
    Option(
        "max-update-norm-ratio",
        float,
        10.0,
        "refuse an update whose change is this many times the sites' median (0: off)",
        low=0,
    ),
    Option(
        "debug-attack",
        str,
        "",
        "tests only: 'SITE:scale=F' or 'SITE:sign-flip=F' (simulated sites), "
        "'SITE:raise=roundN' (also test deployments started with debug-dump-dir)",
    ),
)

SECAGG = (
    Option("secagg", bool, False, "mask updates with SecAgg+"),
    Option("secagg-num-shares", int, 3, "SecAgg+ shares per site", low=1),
    Option("secagg-threshold", int, 2, "SecAgg+ shares needed to unmask", low=1),
    Option("secagg-clipping-range", float, 8.0, "SecAgg+ clipping range", low=1e-6),
    Option("secagg-max-weight", float, 10000.0, "SecAgg+ largest example weight", low=1),
    Option(
        "debug-record-masked",
        bool,
        False,
        "tests only: save the masked uploads and every reply as received",
    ),
)

#: Differential privacy of `dp` (see shared/privacy.py).
DP_MODES = ("off", "client", "dp-sgd")

PRIVACY = (
    Option(
        "dp",
        str,
        "off",
        "differential privacy: client (site-level, clipped updates + Gaussian noise) or "
        "dp-sgd (example-level, Opacus at each site)",
        choices=DP_MODES,
    ),
    Option(
        "dp-noise-multiplier",
        float,
        1.0,
        "noise std / clipping norm (ignored when dp-target-epsilon > 0)",
        low=0.0,
        high=1000.0,
    ),
    Option(
        "dp-target-epsilon",
        float,
        0.0,
        "choose the noise so the whole run spends this epsilon (0: use dp-noise-multiplier)",
        low=0.0,
        high=1000.0,
    ),
    Option(
        "dp-clip-norm",
        float,
        1.0,
        "client: L2 bound of each site's update; dp-sgd: of each example's gradient",
        low=1e-6,
        high=1e6,
    ),
    Option("dp-delta", float, 1e-5, "the delta at which epsilon is reported", low=1e-12, high=0.1),
)
