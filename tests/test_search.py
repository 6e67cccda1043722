"""Architecture search without training: the family builder, the space, the spec section, budgets and selection."""

import optuna
import pytest
import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.pipeline import search_target
from mcuforge.spec import SearchSpace, SearchSpec, parse_spec
from mcuforge.train import zoo
from mcuforge.train.search import space
from mcuforge.train.search.front import TrialRow, choose, fragment
from mcuforge.train.search.study import Budgets
from mcuforge.train.search.target import CandidateCost


def conv(kh, kw, cin, cout):
    return kh * kw * cin * cout


def bn(channels):
    return 4 * channels  # gamma, beta, moving mean, moving variance


def dense(inputs, units):
    return inputs * units + units


def separable_params(stem, stem_kernel, blocks, classes, cin=1):
    """Parameters of a stem conv then depthwise-separable blocks [(channels, kernel)], counted by formula."""
    total = conv(*stem_kernel, cin, stem) + bn(stem)
    previous = stem
    for channels, kernel in blocks:
        total += kernel * kernel * previous + bn(previous) + conv(1, 1, previous, channels) + bn(channels)
        previous = channels
    return total + dense(previous, classes)


def test_family_defaults_are_the_ds_cnn():
    model = zoo.build("separable_cnn", (49, 10, 1), 12)
    assert model.count_params() == separable_params(64, (10, 4), [(64, 3)] * 4, 12)
    assert model.count_params() == zoo.build("ds_cnn", (49, 10, 1), 12).count_params()


def test_a_candidate_builds_with_its_own_channels_kernels_and_strides():
    candidate = space.Candidate(stem_channels=8, stem_stride=2, channels=(16, 4), kernels=(5, 3), strides=(2, 1))
    model = space.build(candidate, SearchSpec(family="mobilenet"), (8, 8, 1), 10, seed=0)
    assert model.count_params() == separable_params(8, (3, 3), [(16, 5), (4, 3)], 10)
    assert model.get_layer("block0_dw").kernel_size == (5, 5)
    assert model.get_layer("block1_dw").output_shape[1:3] == (2, 2)  # 8 -> 4 (stem) -> 2 (block 0) -> 2


def test_chosen_fragment_is_a_model_section_a_spec_accepts():
    candidate = space.Candidate(stem_channels=16, stem_stride=1, channels=(8,), kernels=(3,), strides=(2,))
    text = fragment(candidate.model_spec("ds_cnn"), "study", 3)
    spec = parse_spec({"name": "x", "data": {"dataset": "digits"}, **yaml.safe_load(text)})
    model = zoo.build(spec.model.arch, (8, 8, 1), 10, spec.model.width, **spec.model.options)
    assert model.count_params() == separable_params(16, (10, 4), [(8, 3)], 10)


def test_a_trial_uses_the_first_blocks_of_its_choices():
    params = {"blocks": 2, "stem_channels": 8, "stem_stride": 1}
    params.update({f"channels_{i}": c for i, c in enumerate((16, 32, 64))})
    params.update({f"kernel_{i}": k for i, k in enumerate((3, 5, 3))})
    params.update({f"stride_{i}": s for i, s in enumerate((1, 2, 2))})
    candidate = space.suggest(optuna.trial.FixedTrial(params), SearchSpace(blocks=[1, 2, 3], channels=[8, 16, 32, 64]))
    assert candidate == space.Candidate(8, 1, (16, 32), (3, 5), (1, 2))


def test_the_smallest_candidate_takes_every_cheapest_choice():
    smallest = space.smallest(SearchSpace(blocks=[2, 3], channels=[16, 8], kernels=[5, 3], strides=[1, 2], stem_strides=[1, 2]))
    assert smallest == space.Candidate(8, 2, (8, 8), (3, 3), (2, 2))


SPEC = {"name": "x", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}}


@pytest.mark.parametrize(
    "search, message",
    [
        ({"space": {"kernels": []}}, "search.space.kernels: the list is empty"),
        ({"objectives": ["accuracy", "latency"]}, "search.objectives: expected one of accuracy, instructions, arena, flash. Received: 'latency'"),
        ({"objectives": ["flash"]}, "search.objectives: accuracy must be one of them"),
        ({"trials": None}, "search: give trials, minutes or both"),
        ({"family": "resnet"}, "search.family: expected one of ds_cnn, mobilenet"),
    ],
)
def test_bad_search_sections_are_named(search, message):
    with pytest.raises(MCUForgeError) as raised:
        parse_spec({**SPEC, "search": search})
    assert str(raised.value).startswith(message)


def test_budgets_default_to_the_target_and_name_each_excess():
    spec = parse_spec({**SPEC, "deploy": {"target": "cortex-m0plus-264k"}, "search": {"max_instructions": 1000}})
    budgets = Budgets.of(spec.search, search_target(spec))
    # deploy/chips.yaml: the RP2040 has 2 MB of QSPI flash and 264 KB of SRAM
    assert (budgets.flash_bytes, budgets.arena_bytes) == (2 * 1024 * 1024, 264 * 1024)
    assert budgets.exceeded(CandidateCost(100, 200, 1000, 10)) == []
    assert budgets.exceeded(CandidateCost(3 * 1024 * 1024, 300 * 1024, 1001, 10)) == [
        f"flash {3 * 1024 * 1024} B > {2 * 1024 * 1024} B",
        f"arena {300 * 1024} B > {264 * 1024} B",
        "1001 instructions > 1000",
    ]


def row(number, accuracy, instructions, on_front=True):
    return TrialRow(number, "complete", "", instructions, 1, 1, 1, accuracy, accuracy, "", on_front, {})


def test_selection_rules():
    rows = [row(0, 0.95, 900), row(1, 0.945, 300), row(2, 0.90, 100), row(3, 0.99, 5000, on_front=False)]
    assert choose(rows, SearchSpec()).number == 0  # the most accurate on the front
    assert choose(rows, SearchSpec(select="fastest_within", within_points=1.0)).number == 1  # 0.945 >= 0.95 - 0.01
    assert choose(rows, SearchSpec(select="fastest_within", within_points=5.0)).number == 2
    with pytest.raises(MCUForgeError, match="no trial completed"):
        choose([row(0, 0.9, 1, on_front=False)], SearchSpec())


def costed(number, accuracy, instructions, arena, flash, state="complete"):
    return TrialRow(number, state, "", instructions, arena, flash, 1, accuracy, accuracy, "", False, {})


def test_within_reference_takes_the_most_accurate_trial_costing_no_more_than_the_reference_in_each():
    reference = CandidateCost(flash_bytes=1000, arena_bytes=500, instructions=10_000, macs=1)
    rows = [
        costed(0, 0.99, 20_000, 400, 900),  # over in instructions
        costed(1, 0.98, 9_000, 600, 900),  # over in arena
        costed(2, 0.97, 9_000, 400, 1001),  # over in flash
        costed(3, 0.99, 9_000, 400, 900, state="pruned"),  # not scored to the end
        costed(4, 0.95, 10_000, 500, 1000),  # at the bound in all three: within
        costed(5, 0.95, 8_000, 300, 700),  # as accurate and cheaper: the pick
        costed(6, 0.90, 1_000, 100, 100),
    ]
    rule = SearchSpec(select="within_reference")
    assert choose(rows, rule, reference).number == 5  # off the front (on_front False) is eligible too
    assert choose(rows[:5], rule, reference).number == 4
    with pytest.raises(MCUForgeError, match="no complete trial costs no more than the spec's own model \\(10000 instructions, arena 500 B, flash 1000 B"):
        choose(rows[:4], rule, reference)
