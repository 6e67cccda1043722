"""Pipeline specs: the YAML document loaded into typed dataclasses and checked for its structure.

The typed-YAML rules (types, bounds, choices, unknown keys) come from mcuforge.config.
The options each stage owns (data set, model, compression recipe) are checked by
that stage before it starts: see `check_spec` in train/trainer.py and
core/pipeline.py.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from mcuforge.config import parse_dataclass, spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.features import MAX_STRIDE_MS
from mcuforge.layout import BuildLayout


NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class DataSpec:
    dataset: str = spec_field(help="digits, keywords, vibration, gestures, npz or wav_folder")
    seed: int = spec_field(0, min=0, help="seed for splits, synthesis and augmentation")
    options: dict = spec_field({}, help="data-set specific options")


@dataclass(frozen=True)
class ModelSpec:
    arch: str = spec_field(help="a zoo architecture")
    width: float = spec_field(1.0, min_exclusive=0.0, max=8.0, help="width multiplier")
    options: dict = spec_field({}, help="architecture specific options")


@dataclass(frozen=True)
class TrainSpec:
    epochs: int = spec_field(20, min=1, max=10000)
    batch_size: int = spec_field(64, min=1, max=65536)
    optimizer: str = spec_field("adam", choices=("adam", "sgd", "rmsprop"))
    learning_rate: float = spec_field(1e-3, min_exclusive=0.0, max=10.0)
    lr_schedule: str = spec_field("cosine", choices=("constant", "cosine", "step"))
    seed: int = spec_field(0, min=0)
    consistency_weight: float = spec_field(
        0.0, min=0.0, max=100.0,
        help="weight of a loss pulling the predictions for two views of one sample together (data sets with views: keywords); 0: off",
    )


@dataclass(frozen=True)
class CompressSpec:
    steps: list[str] = spec_field(["distill", "prune", "quantize"], help="ordered compression steps")
    max_accuracy_drop: float | None = spec_field(None, min=0.0, max=1.0)
    options: dict = spec_field({}, help="per-step options, keyed by step name")


@dataclass(frozen=True)
class DeploySpec:
    target: str = spec_field("cortex-m4-256k", help="a target from deploy/targets")
    quantization: str = spec_field("int8", choices=("int8", "int16x8"))
    io_type: str = spec_field("int8", choices=("int8", "float32"))
    representative_samples: int = spec_field(200, min=1, max=100000)


OBJECTIVES = ("accuracy", "instructions", "arena", "flash")


@dataclass(frozen=True)
class SearchSpace:
    """The choices architecture search draws from; a candidate has `blocks` blocks, each with its own choices."""

    blocks: list[int] = spec_field([1, 2, 3, 4], min=1, max=16, help="how many depthwise-separable blocks")
    channels: list[int] = spec_field([8, 16, 32, 48, 64], min=1, max=1024, help="channels of the stem and of each block")
    kernels: list[int] = spec_field([3, 5], min=1, max=15, help="depthwise kernel size of each block")
    strides: list[int] = spec_field([1, 2], min=1, max=4, help="stride of each block")
    stem_strides: list[int] = spec_field([1, 2], min=1, max=4, help="stride of the first convolution")
    num_mfcc: list[int] | None = spec_field(None, min=1, max=13, help="keywords and wav_folder MFCC features: coefficients per frame [default: data.options.num_mfcc, not searched]")
    frame_stride_ms: list[int] | None = spec_field(
        None, min=1, max=MAX_STRIDE_MS, help="keywords and wav_folder features: milliseconds between frames [default: data.options.frame_stride_ms, not searched]"
    )

    def __post_init__(self):
        for name in ("blocks", "channels", "kernels", "strides", "stem_strides", "num_mfcc", "frame_stride_ms"):
            if getattr(self, name) == []:
                raise MCUForgeError(f"search.space.{name}: the list is empty, so no candidate exists: give at least one value")


@dataclass(frozen=True)
class SearchSpec:
    """Architecture search: the family, its space, objectives, budgets, how long, and how to pick the winner."""

    family: str = spec_field("ds_cnn", choices=("ds_cnn", "mobilenet"), help="ds_cnn: 10x4 stem kernel; mobilenet: 3x3")
    space: SearchSpace = spec_field(SearchSpace())
    objectives: list[str] = spec_field(["accuracy", "instructions"], choices=OBJECTIVES, help="what the front trades off")
    max_flash_bytes: int | None = spec_field(None, min=1, help="model flash budget [default: the deploy target's flash]")
    max_arena_bytes: int | None = spec_field(None, min=1, help="tensor arena budget [default: the deploy target's RAM]")
    max_instructions: int | None = spec_field(None, min=1, help="optional latency budget, instructions per inference")
    trials: int | None = spec_field(20, min=1, help="trials in the study, across workers and resumed runs")
    minutes: float | None = spec_field(None, min_exclusive=0.0, help="wall-clock limit of one search run")
    epochs: int = spec_field(3, min=1, max=1000, help="training epochs of each candidate")
    seed: int = spec_field(0, min=0, help="the sampler's seed")
    sampler: str = spec_field("nsga2", choices=("nsga2", "tpe"))
    pruner: str = spec_field("successive_halving", choices=("successive_halving", "hyperband", "none"))
    select: str = spec_field("most_accurate", choices=("most_accurate", "fastest_within", "within_reference"),
                             help="how the final model is picked; within_reference: the most accurate costing no more than the spec's own model")
    within_points: float = spec_field(1.0, min=0.0, max=100.0, help="fastest_within: accuracy points below the best allowed")
    finalists: int = spec_field(3, min=0, max=64, help="the top candidates the select rule may pick (by search score), trained "
                                "again for finalist_epochs and picked by their int8 validation accuracy; 0: pick by the search score")
    finalist_epochs: int | None = spec_field(None, min=1, max=1000, help="finalists' training epochs [default: train.epochs, the final training's]")
    finalist_pool: int = spec_field(0, min=0, max=64, help="successive halving before the final training: the top N candidates the "
                                    "rule may pick are first trained for a third of finalist_epochs, and the best `finalists` of them "
                                    "(int8 validation accuracy) go on; 0 (or no more than finalists): none")
    reference_instructions: float = spec_field(1.0, min_exclusive=0.0, max=1.0, help="within_reference: the share of the spec's own "
                                               "model's instructions the choice may cost (0.5: half); below 1, candidates over it are rejected untrained")
    seeds: int = spec_field(4, min=0, max=64, help="within_reference: ladder candidates (the DS-CNN base, narrower, fewer blocks, "
                            "strided earlier) within the reference's costs, queued first in a fresh study")
    workers: int = spec_field(1, min=1, max=64, help="processes on this machine sharing the study")
    storage: str | None = spec_field(None, help="an Optuna storage URL [default: a journal file in build/<name>/search/]")

    def __post_init__(self):
        if "accuracy" not in self.objectives:
            raise MCUForgeError(f"search.objectives: accuracy must be one of them. Received: {self.objectives}")
        if len(set(self.objectives)) != len(self.objectives):
            raise MCUForgeError(f"search.objectives: each objective once. Received: {self.objectives}")
        if self.trials is None and self.minutes is None:
            raise MCUForgeError("search: give trials, minutes or both, or the search never ends")


@dataclass(frozen=True)
class SecureAggregationSpec:
    """Flower's SecAgg+ (train/federated/secure.py): the server sees only the sum of the clients' updates."""

    shares: int = spec_field(3, min=3, help="neighbours each client secret-shares its mask seeds with (itself included)")
    threshold: int = spec_field(2, min=2, help="shares that recover a dropped client's masks: below shares, a round tolerates shares - threshold dropouts among neighbours")
    clipping_range: float = spec_field(8.0, min_exclusive=0.0, help="update values, each tensor scaled by the power of two the server announces, are clipped to +-this before quantization; a client refuses to send one beyond it")


@dataclass(frozen=True)
class PersonalizationSpec:
    """After federated training each client fine-tunes the classifier head (train/federated/personalize.py)."""

    steps: int = spec_field(20, min=1, max=100000, help="head-only training steps (one batch each) per client")
    learning_rate: float = spec_field(0.01, min_exclusive=0.0, max=10.0)
    held_out: float = spec_field(0.2, min_exclusive=0.0, max=0.9, help="share of each client's samples kept out of all training, to score global vs personalized")


@dataclass(frozen=True)
class FederatedSpec:
    """Federated training (train/federated): present, it replaces central training in `mcuforge run`."""

    rounds: int = spec_field(10, min=1, max=10000)
    clients: int = spec_field(10, min=2, max=10000, help="Dirichlet-split clients (digits, gestures); keywords: one per training speaker; vibration: one per machine")
    alpha: float = spec_field(0.5, min_exclusive=0.0, max=1000.0, help="Dirichlet label-skew concentration: small is more non-IID")
    fraction: float = spec_field(1.0, min_exclusive=0.0, max=1.0, help="share of clients sampled per round")
    local_epochs: int = spec_field(1, min=1, max=1000, help="epochs over its own data each sampled client trains per round")
    local_batch_size: int | None = spec_field(
        None, min=1, max=65536, help="batch size of the clients' local training (none: train.batch_size); a client holding few samples takes more steps an epoch with a smaller one"
    )
    decay_over_rounds: bool = spec_field(
        False, help="the clients' learning rate follows train.lr_schedule over the rounds (as central training's over its steps); off: train.learning_rate every round"
    )
    strategy: str = spec_field("fedavg", choices=("fedavg", "fedprox"))
    proximal_mu: float = spec_field(0.01, min=0.0, max=100.0, help="FedProx proximal-term weight")
    server_optimizer: str = spec_field(
        "sgd", choices=("sgd", "adam", "yogi"),
        help="how the server applies the clients' mean update: sgd (FedAvg; FedAvgM with server_momentum), adam or yogi (FedOpt)",
    )
    server_learning_rate: float = spec_field(1.0, min_exclusive=0.0, max=100.0, help="server step size (sgd 1 with momentum 0: FedAvg)")
    server_momentum: float = spec_field(0.0, min=0.0, max=0.999, help="sgd's server momentum; adam's and yogi's beta1")
    min_clients: int = spec_field(1, min=1, help="fewest answering clients a round aggregates; fewer keeps the model")
    dropout: float = spec_field(0.0, min=0.0, max=1.0, help="chance a sampled client fails before reporting")
    crash: bool = spec_field(False, help="a dropped client ends its process (a device losing power) instead of raising")
    stragglers: float = spec_field(0.0, min=0.0, max=1.0, help="chance a sampled client is slow by straggler_seconds")
    straggler_seconds: float = spec_field(5.0, min=0.0, max=3600.0)
    round_timeout: float | None = spec_field(None, min_exclusive=0.0, help="seconds a round waits for clients (stragglers beyond it are dropped)")
    oversample: bool = spec_field(True, help="sample more clients as they fail to answer: fraction over the answer rate so far")
    compression: str = spec_field("none", choices=("none", "int8", "topk", "int4"), help="how clients encode their updates (int4: 4-bit stochastic, one packed tensor)")
    topk_fraction: float = spec_field(0.1, min_exclusive=0.0, max=1.0, help="share of update values top-k keeps")
    client_cpus: float = spec_field(1.0, min_exclusive=0.0, max=64.0, help="CPUs Ray reserves per simulated client")
    secure_aggregation: SecureAggregationSpec | None = spec_field(None, help="SecAgg+: the server sees only the sum of the updates")
    personalization: PersonalizationSpec | None = spec_field(None, help="each client fine-tunes the head on its own data afterwards")
    statistics_round: bool = spec_field(
        False, help="one more round without training: sampled clients send their data's batch-norm statistics under the final weights"
    )


@dataclass(frozen=True)
class Spec:
    name: str = spec_field(help="lower-case identifier; outputs go to build/<name>/")
    data: DataSpec = spec_field()
    model: ModelSpec = spec_field()
    train: TrainSpec = spec_field(TrainSpec())
    compress: CompressSpec = spec_field(CompressSpec())
    deploy: DeploySpec = spec_field(DeploySpec())
    search: SearchSpec | None = spec_field(None, help="architecture search before training (mcuforge search)")
    federated: FederatedSpec | None = spec_field(None, help="train across clients with Flower instead of centrally")

    def layout(self, root: Path | str = "build") -> BuildLayout:
        return BuildLayout.of(self.name, root)

    def build_dir(self, root: Path | str = "build") -> Path:
        return self.layout(root).base


def parse_spec(data: Any, source: str = "spec") -> Spec:
    """Validate a spec mapping's structure; the stages check their own options (data set, model, recipe)."""
    spec = parse_dataclass(Spec, data)
    if not NAME_PATTERN.match(spec.name):
        raise MCUForgeError(
            f"name: expected lower-case letters, digits, '-' or '_' (at most 64). Received: {spec.name!r}"
        )
    return spec


def _yaml_where(exc: yaml.YAMLError) -> str:
    """Where and what the YAML error is, on one line (PyYAML's own message spans several)."""
    mark = getattr(exc, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(exc, "problem", None)
    return f"{where} ({problem})" if problem else where


def load_spec(path: Path | str) -> Spec:
    """Read and validate a YAML spec file."""
    path = Path(path)
    if not path.is_file():
        raise MCUForgeError(f"spec file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise MCUForgeError(f"{path}: not valid YAML{_yaml_where(exc)}: fix the file's syntax") from None
    return parse_spec(data, str(path))
