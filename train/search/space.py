"""The search space: what a candidate is, how a trial draws one, and the model (and data) section that builds it.

Every candidate is a zoo `separable_cnn` (a stem convolution, then depthwise-separable
blocks with their own channels, kernel and stride); the family fixes the stem kernel.
A trial always draws choices for the largest block count and uses the first `blocks`
of them, so the space is the same for every trial (NSGA-II crosses parents over
parameters both have).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mcuforge.spec import DataSpec, ModelSpec, SearchSpace, SearchSpec, Spec

ARCH = "separable_cnn"
STEM_KERNEL = {"ds_cnn": [10, 4], "mobilenet": [3, 3]}


@dataclass(frozen=True)
class Candidate:
    """One architecture of the space."""

    stem_channels: int
    stem_stride: int
    channels: tuple[int, ...]
    kernels: tuple[int, ...]
    strides: tuple[int, ...]
    num_mfcc: int | None = None  # keyword features: coefficients per frame (None: the data section's)
    frame_stride_ms: int | None = None  # keyword features: milliseconds between frames (None: the data section's)

    def model_spec(self, family: str) -> ModelSpec:
        """The spec's model section that trains this candidate (what chosen.yaml holds)."""
        return ModelSpec(
            arch=ARCH,
            width=1.0,
            options={
                "stem_channels": self.stem_channels,
                "stem_kernel": list(STEM_KERNEL[family]),
                "stem_stride": self.stem_stride,
                "channels": list(self.channels),
                "kernels": list(self.kernels),
                "strides": list(self.strides),
            },
        )

    def describe(self) -> str:
        """Short and unique, for tables: the stem's channels and stride, then each block's channels, kernel and stride.

        >>> Candidate(16, 2, (32, 8), (3, 5), (1, 2)).describe()
        'stem 16s2, 32k3s1 8k5s2'
        >>> Candidate(16, 2, (32,), (3,), (1,), num_mfcc=5).describe()
        'mfcc 5, stem 16s2, 32k3s1'
        >>> Candidate(16, 2, (32,), (3,), (1,), num_mfcc=5, frame_stride_ms=40).describe()
        'mfcc 5, frames 40 ms, stem 16s2, 32k3s1'
        """
        blocks = " ".join(f"{c}k{k}s{s}" for c, k, s in zip(self.channels, self.kernels, self.strides))
        features = "" if self.num_mfcc is None else f"mfcc {self.num_mfcc}, "
        features += "" if self.frame_stride_ms is None else f"frames {self.frame_stride_ms} ms, "
        return f"{features}stem {self.stem_channels}s{self.stem_stride}, {blocks}"

    def data_options(self) -> dict:
        return searched_data(self.num_mfcc, self.frame_stride_ms)


def searched_data(num_mfcc: int | None, frame_stride_ms: int | None) -> dict:
    """The data options a candidate's searched features set over the data section's (None: not searched).

    >>> searched_data(None, 40)
    {'frame_stride_ms': 40}
    """
    chosen = {"num_mfcc": num_mfcc, "frame_stride_ms": frame_stride_ms}
    return {name: value for name, value in chosen.items() if value is not None}


def suggest(trial, space: SearchSpace) -> Candidate:
    """Draw a candidate through an Optuna trial (its parameters are stored in the study)."""
    blocks = trial.suggest_categorical("blocks", space.blocks)
    per_block = [
        (
            trial.suggest_categorical(f"channels_{i}", space.channels),
            trial.suggest_categorical(f"kernel_{i}", space.kernels),
            trial.suggest_categorical(f"stride_{i}", space.strides),
        )
        for i in range(max(space.blocks))
    ][:blocks]
    return Candidate(
        stem_channels=trial.suggest_categorical("stem_channels", space.channels),
        stem_stride=trial.suggest_categorical("stem_stride", space.stem_strides),
        channels=tuple(c for c, _, _ in per_block),
        kernels=tuple(k for _, k, _ in per_block),
        strides=tuple(s for _, _, s in per_block),
        num_mfcc=trial.suggest_categorical("num_mfcc", space.num_mfcc) if space.num_mfcc else None,
        frame_stride_ms=trial.suggest_categorical("frame_stride_ms", space.frame_stride_ms) if space.frame_stride_ms else None,
    )


def params(candidate: Candidate, space: SearchSpace) -> dict:
    """The trial parameters `suggest` draws `candidate` from (to queue it: Optuna's enqueue_trial); blocks past its
    last repeat the last one's choices.

    >>> params(Candidate(16, 2, (32,), (3,), (1,)), SearchSpace(blocks=[1, 2]))["channels_1"]
    32
    """
    drawn = {"blocks": len(candidate.channels), "stem_channels": candidate.stem_channels, "stem_stride": candidate.stem_stride}
    for i in range(max(space.blocks)):
        last = min(i, len(candidate.channels) - 1)
        drawn |= {f"channels_{i}": candidate.channels[last], f"kernel_{i}": candidate.kernels[last], f"stride_{i}": candidate.strides[last]}
    if space.num_mfcc:
        drawn["num_mfcc"] = candidate.num_mfcc
    if space.frame_stride_ms:
        drawn["frame_stride_ms"] = candidate.frame_stride_ms
    return drawn


def data_with(data: DataSpec, options: dict) -> DataSpec:
    """The data section a candidate trains on: `data` with the features' `options` it chose (Candidate.data_options;
    none: as it is)."""
    if not options:
        return data
    return dataclasses.replace(data, options={**data.options, **options})


class CandidateData:
    """The data set a candidate trains on (its features' coefficients and frame stride) and its representative inputs,
    loaded once per features."""

    def __init__(self, spec: Spec, representative_sample) -> None:
        self.spec = spec
        self.representative_sample = representative_sample
        self.loaded: dict[tuple, tuple] = {}

    def __call__(self, candidate: Candidate) -> tuple:
        from mcuforge.train.trainer import load_dataset

        key = tuple(sorted(candidate.data_options().items()))
        if key not in self.loaded:
            dataset = load_dataset(dataclasses.replace(self.spec, data=data_with(self.spec.data, candidate.data_options())))
            self.loaded[key] = dataset, self.representative_sample(dataset.x_train)
        return self.loaded[key]


def smallest(space: SearchSpace) -> Candidate:
    """The cheapest candidate in flash, RAM and instructions: fewest, narrowest, smallest-kernel, most-strided blocks."""
    blocks = min(space.blocks)
    return Candidate(
        stem_channels=min(space.channels),
        stem_stride=max(space.stem_strides),
        channels=(min(space.channels),) * blocks,
        kernels=(min(space.kernels),) * blocks,
        strides=(max(space.strides),) * blocks,
        num_mfcc=min(space.num_mfcc) if space.num_mfcc else None,
        frame_stride_ms=max(space.frame_stride_ms) if space.frame_stride_ms else None,
    )


def build(candidate: Candidate, search: SearchSpec, input_shape, num_classes: int, seed: int):
    """The candidate as an untrained tf_keras model, initialized from `seed`."""
    import tf_keras

    from mcuforge.train import zoo

    model = candidate.model_spec(search.family)
    tf_keras.utils.set_random_seed(seed)
    return zoo.build(model.arch, input_shape, num_classes, model.width, **model.options)
