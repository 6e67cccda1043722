"""Seed trials: the family's base DS-CNN and scaled-down variants of it, queued before the sampler draws.

With `select: within_reference` the pick must cost no more than the spec's own model
(times `reference_instructions` in instructions). A sampler drawing the whole space
from random start-up trials rarely lands on the few strong candidates near that bound
(keywords: 20 trials drew none within 3 points of the hand-made DS-CNN). So a fresh
study first queues (Optuna's enqueue_trial) up to `search.seeds` architectures of a
ladder down from the base, `separable_cnn`'s defaults (MLPerf Tiny's DS-CNN: a stem of
64 channels at stride 2, four 64-channel blocks of kernel 3), each snapped into the
space: per (channels, blocks) pair, most capacity first, the first stride pattern that
fits the bound (no stride-2 block, then a stride-2 block ever earlier: fewer pixels for
the blocks after it, while the first blocks keep their receptive field). When the space
searches the keyword features' coefficients, the stride patterns come with the data
section's count first, then again with each fewer one of the space (fewer frame columns
for every layer), never more: on keywords, within 0.5x the hand-made DS-CNN's
instructions, 48-wide blocks strided once on 10 coefficients beat them unstrided on 6 or
(three blocks) on 8, and 13 coefficients scored lower than 10 (README). When it searches
the features' frame stride too, the coarser strides come last (after every coefficient
count on the data section's frames), never finer: fewer frames lost more than a block
stride or fewer coefficients at the same cost (the 48x4 model on 33 frames, 0.47x,
scored 0.8819 against 0.9007 on 6 coefficients at 0.42x and 0.9146 for the strided
pick at 0.49x). Fitting is measured (candidate_cost), not estimated.
"""

from __future__ import annotations

from collections.abc import Iterator

from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.spec import SearchSpace, Spec
from mcuforge.train.search import space
from mcuforge.train.search.target import CandidateCost, DeployTarget

BASE_CHANNELS, BASE_BLOCKS, BASE_KERNEL, BASE_STEM_STRIDE = 64, 4, 3, 2  # separable_cnn's defaults: ds_cnn's layers


def _nearest(choices: list[int], value: int) -> int:
    return min(choices, key=lambda choice: (abs(choice - value), choice))


def stride_patterns(blocks: int, strides: list[int]) -> list[tuple[int, ...]]:
    """The block strides of the ladder, costliest first: all the least stride, then the largest stride at one block,
    from the last block to the first.

    >>> stride_patterns(3, [1, 2])
    [(1, 1, 1), (1, 1, 2), (1, 2, 1), (2, 1, 1)]
    """
    low, high = min(strides), max(strides)
    patterns = [(low,) * blocks]
    if high != low:
        patterns += [tuple(high if i == at else low for i in range(blocks)) for at in reversed(range(blocks))]
    return patterns


def coefficient_choices(search_space: SearchSpace, data_num_mfcc: int) -> list[int]:
    """The features' coefficients the ladder offers, most first: the space's no more than the data section's (the
    nearest when it has none).

    >>> coefficient_choices(SearchSpace(num_mfcc=[6, 8, 10, 13]), 10)
    [10, 8, 6]
    >>> coefficient_choices(SearchSpace(num_mfcc=[12, 13]), 10)
    [12]
    """
    return sorted({n for n in search_space.num_mfcc if n <= data_num_mfcc} or {_nearest(search_space.num_mfcc, data_num_mfcc)}, reverse=True)


def frame_stride_choices(search_space: SearchSpace, data_frame_stride_ms: int) -> list[int]:
    """The features' frame strides the ladder offers, finest first: the space's no finer than the data section's (the
    nearest when it has none).

    >>> frame_stride_choices(SearchSpace(frame_stride_ms=[10, 20, 30, 40]), 20)
    [20, 30, 40]
    """
    strides = search_space.frame_stride_ms
    return sorted({s for s in strides if s >= data_frame_stride_ms} or {_nearest(strides, data_frame_stride_ms)})


def feature_choices(search_space: SearchSpace, data_options) -> list[tuple[int | None, int | None]]:
    """The (num_mfcc, frame_stride_ms) pairs the ladder offers (None: not searched): the data section's frames with
    each coefficient count (most first), then each coarser frame stride likewise.

    >>> from types import SimpleNamespace
    >>> feature_choices(SearchSpace(num_mfcc=[6, 10], frame_stride_ms=[20, 30]), SimpleNamespace(num_mfcc=10, frame_stride_ms=20))
    [(10, 20), (6, 20), (10, 30), (6, 30)]
    """
    coefficients = coefficient_choices(search_space, data_options.num_mfcc) if search_space.num_mfcc else [None]
    strides = frame_stride_choices(search_space, data_options.frame_stride_ms) if search_space.frame_stride_ms else [None]
    return [(num_mfcc, stride_ms) for stride_ms in strides for num_mfcc in coefficients]


def ladder(search_space: SearchSpace, choices: list[tuple[int | None, int | None]]) -> Iterator[list[space.Candidate]]:
    """Per (channels, blocks) pair, most pointwise capacity (channels² × blocks) first: its candidates, costliest
    first (the stride patterns with each of the (num_mfcc, frame_stride_ms) feature `choices` in turn). Channels and
    blocks no more than the base's (the nearest choice when the space has none below it)."""
    channels = sorted({c for c in search_space.channels if c <= BASE_CHANNELS} or {min(search_space.channels)})
    blocks = sorted({b for b in search_space.blocks if b <= BASE_BLOCKS} or {min(search_space.blocks)})
    kernel = _nearest(search_space.kernels, BASE_KERNEL)
    stem_stride = _nearest(search_space.stem_strides, BASE_STEM_STRIDE)
    for width, count in sorted(((c, b) for c in channels for b in blocks), key=lambda pair: (-pair[0] ** 2 * pair[1], -pair[0])):
        yield [space.Candidate(width, stem_stride, (width,) * count, (kernel,) * count, pattern, num_mfcc, frame_stride_ms)
               for num_mfcc, frame_stride_ms in choices for pattern in stride_patterns(count, search_space.strides)]


def fits(cost: CandidateCost, bound: CandidateCost) -> bool:
    return cost.instructions <= bound.instructions and cost.arena_bytes <= bound.arena_bytes and cost.flash_bytes <= bound.flash_bytes


def seed_candidates(spec: Spec, target: DeployTarget, bound: CandidateCost, progress: Progress) -> list[space.Candidate]:
    """Up to `search.seeds` ladder candidates within `bound`, one per (channels, blocks) pair; a pair whose cheapest
    candidate is over the bound costs one measurement."""
    from mcuforge.train.datasets import parse_options

    search = spec.search
    choices = [(None, None)]
    if search.space.num_mfcc or search.space.frame_stride_ms:
        choices = feature_choices(search.space, parse_options(spec.data.dataset, spec.data.options))
    data = space.CandidateData(spec, target.representative_sample)

    def within(candidate: space.Candidate) -> bool:
        dataset, representative = data(candidate)
        model = space.build(candidate, search, dataset.input_shape, dataset.num_classes, spec.train.seed)
        try:
            return fits(target.candidate_cost(model, representative), bound)
        except MCUForgeError:  # the converter or the engine refuses this one untrained (as a trial, it would fail alone)
            return False

    seeds = []
    for rung in ladder(search.space, choices):
        if len(seeds) == search.seeds:
            break
        if within(rung[-1]):
            seeds.append(next((candidate for candidate in rung[:-1] if within(candidate)), rung[-1]))
            progress.line(f"seed {len(seeds)}: {seeds[-1].describe()}")
    return seeds
