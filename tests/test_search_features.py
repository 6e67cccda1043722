"""Searching the keyword features' MFCC coefficients with the architecture: a trial trains on the features it draws,
and the chosen count reaches the data section the later stages run."""

import optuna
import pytest
import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.pipeline import search_target
from mcuforge.progress import Progress
from mcuforge.spec import parse_spec
from mcuforge.train.search.front import fragment
from mcuforge.train.search.stage import check_smallest_fits
from mcuforge.train.search.study import Objective, directions

# Seconds to build (tests/test_keywords.py): 6 speakers, one take per class; 4 classes (2 words, silence, unknown).
TINY = {"words": ["yes", "no"], "unknown_words": ["cat", "dog"], "speakers": 6, "repetitions": 1, "workers": 2}
SPACE = {"blocks": [1], "channels": [4], "kernels": [3], "strides": [2], "stem_strides": [2], "num_mfcc": [5, 10]}
SPEC = {
    "name": "search-mfcc",
    "data": {"dataset": "keywords", "options": TINY},
    "model": {"arch": "ds_cnn"},
    "train": {"epochs": 1, "batch_size": 16},
    "search": {"family": "mobilenet", "space": SPACE, "epochs": 1, "trials": 1, "pruner": "none"},
}


# 49x5 features: stem 3x3/2 to 4 channels (25x3), depthwise 3x3/2 (13x2), pointwise 4 -> 4, dense 4 -> 4 classes;
# 25x10 features (40 ms frames): stem to 13x5, depthwise to 7x3.
DRAWN = [
    ("num_mfcc", 5, "mfcc 5, stem 4s2, 4k3s2", 25 * 3 * 4 * 9 + 13 * 2 * 4 * 9 + 13 * 2 * 4 * 4 + 4 * 4),
    ("frame_stride_ms", 40, "frames 40 ms, stem 4s2, 4k3s2", 13 * 5 * 4 * 9 + 7 * 3 * 4 * 9 + 7 * 3 * 4 * 4 + 4 * 4),
]


@pytest.mark.slow
@pytest.mark.parametrize("option, value, architecture, macs", DRAWN)
def test_a_trial_trains_on_the_features_it_draws(option, value, architecture, macs):
    space_options = {**SPACE, "num_mfcc": None, option: [value, 10 if option == "num_mfcc" else 20]}
    spec = parse_spec({**SPEC, "search": {**SPEC["search"], "space": space_options}})
    study = optuna.create_study(directions=directions(spec.search))
    study.enqueue_trial({option: value})  # every other choice has one value
    study.optimize(Objective(spec, search_target(spec), None, Progress.quiet()), n_trials=1)
    [trial] = study.trials
    assert trial.state == optuna.trial.TrialState.COMPLETE, trial.system_attrs
    assert trial.user_attrs[option] == value and trial.user_attrs["architecture"] == architecture
    assert trial.user_attrs["macs"] == macs


def test_the_chosen_coefficients_reach_the_spec_the_later_stages_run():
    from mcuforge.results import SearchResult
    from mcuforge.train.search.stage import with_chosen_model

    spec = parse_spec(SPEC)
    model = parse_spec({**SPEC, "model": {"arch": "separable_cnn", "options": {"stem_channels": 4}}}).model
    result = SearchResult("study", "storage", 1, 1, 0, 0, 0, 1.0, 0, model, 0.5, 1, 1, 1, chosen_num_mfcc=5)
    chosen = with_chosen_model(spec, result)
    assert chosen.data.options == {**TINY, "num_mfcc": 5} and chosen.model == model
    pasted = yaml.safe_load(fragment(model, "study", 0, num_mfcc=5))
    assert pasted["data"] == {"options": {"num_mfcc": 5}} and pasted["model"]["options"] == {"stem_channels": 4}


def test_num_mfcc_on_data_without_mfcc_features_is_named_before_training():
    spec = parse_spec({**SPEC, "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}})
    with pytest.raises(MCUForgeError, match="search.space.num_mfcc: digits with these options has no MFCC features"):
        check_smallest_fits(spec, search_target(spec))


def _pixel_priced_seeds(space_options: dict, seen: list):
    """Seeds of a keywords search over `space_options`, priced by a stand-in: the last feature map's pixels (what the
    features' columns and frames and the strides change); a function of the instruction bound and a directory."""
    from mcuforge.train.search import space
    from mcuforge.train.search.stage import seed_study
    from mcuforge.train.search.study import open_study
    from mcuforge.train.search.target import CandidateCost, DeployTarget

    def last_feature_map_pixels(model, representative) -> CandidateCost:
        seen.append(representative.shape[1:3])
        _, height, width, _ = [layer.output_shape for layer in model.layers if len(layer.output_shape) == 4][-1]
        return CandidateCost(flash_bytes=1, arena_bytes=1, instructions=height * width, macs=0)

    target = DeployTarget(flash_bytes=10**6, ram_bytes=10**6, candidate_cost=last_feature_map_pixels, int8_accuracy=None,
                          representative_sample=lambda x: x[:4], reference_cost=None)
    spec = parse_spec({**SPEC, "search": {**SPEC["search"], "space": space_options, "select": "within_reference", "seeds": 1}})

    def seed(instructions: int, directory) -> list:
        seed_study(spec, directory, target, CandidateCost(flash_bytes=1, arena_bytes=1, instructions=instructions, macs=0),
                   Progress.quiet())
        study, _ = open_study(spec, directory)
        return [space.suggest(study.ask(), spec.search.space) for _ in study.get_trials()]

    return seed


def test_the_seeds_stride_before_they_take_fewer_coefficients_and_never_take_more(tmp_path):
    from mcuforge.train.search import space

    seen = []
    # The data section's 10 coefficients (keywords' default); the space's 13 is more, never offered. 49 frames through the
    # 3x3 stem at stride 2 (same padding): 25 rows; 10 columns -> 5, 5 -> 3. The unstrided block keeps them: 125 and
    # 75 pixels; a stride-2 block 13x3 = 39 and 13x2 = 26.
    seed = _pixel_priced_seeds({**SPACE, "strides": [1, 2], "num_mfcc": [5, 10, 13]}, seen)
    assert seed(100, tmp_path / "a") == [space.Candidate(4, 2, (4,), (3,), (2,), num_mfcc=10)]  # 10 strided (39), not 5 (75)
    assert seed(30, tmp_path / "b") == [space.Candidate(4, 2, (4,), (3,), (2,), num_mfcc=5)]  # no pattern on 10 fits
    assert sorted(set(seen)) == [(49, 5), (49, 10)]


# --- the frame stride: fewer frames a clip (1 + (16000 - 480) // (16 x stride ms): 49 at 20 ms, 25 at 40 ms) ---

STRIDE_SPEC = {**SPEC, "search": {**SPEC["search"], "space": {**SPACE, "num_mfcc": None, "frame_stride_ms": [20, 40]}}}


def test_the_chosen_frame_stride_reaches_the_spec_the_later_stages_run():
    from mcuforge.results import SearchResult
    from mcuforge.train.search.stage import with_chosen_model

    spec = parse_spec(STRIDE_SPEC)
    model = parse_spec({**SPEC, "model": {"arch": "separable_cnn", "options": {"stem_channels": 4}}}).model
    result = SearchResult("study", "storage", 1, 1, 0, 0, 0, 1.0, 0, model, 0.5, 1, 1, 1, chosen_frame_stride_ms=40)
    assert with_chosen_model(spec, result).data.options == {**TINY, "frame_stride_ms": 40}
    text = fragment(model, "study", 0, num_mfcc=8, frame_stride_ms=40)
    assert "# Merge data.options.num_mfcc and data.options.frame_stride_ms into the spec's data section." in text
    assert yaml.safe_load(text)["data"] == {"options": {"num_mfcc": 8, "frame_stride_ms": 40}}


def test_bad_frame_strides_are_named_before_training():
    with pytest.raises(MCUForgeError, match=r"search.space.frame_stride_ms: expected a value >= 1 and <= 1000. Received: 1001"):
        parse_spec({**STRIDE_SPEC, "search": {**STRIDE_SPEC["search"], "space": {**SPACE, "frame_stride_ms": [20, 1001]}}})
    with pytest.raises(MCUForgeError, match="search.space.frame_stride_ms: the list is empty"):
        parse_spec({**STRIDE_SPEC, "search": {**STRIDE_SPEC["search"], "space": {**SPACE, "frame_stride_ms": []}}})
    spec = parse_spec({**STRIDE_SPEC, "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}})
    with pytest.raises(MCUForgeError, match="search.space.frame_stride_ms: digits has no audio feature frames to choose the stride of"):
        check_smallest_fits(spec, search_target(spec))


def test_the_seeds_take_a_coarser_frame_stride_only_where_no_block_stride_fits(tmp_path):
    from mcuforge.train.search import space

    seen = []
    # 49, 33 and 25 frames (20, 30, 40 ms; the 10 ms of the space is finer than the data section's 20, never offered)
    # through the 3x3 stem at stride 2: 25, 17 and 13 rows of 5 columns; a stride-2 block: 13x3 = 39, 9x3 = 27, 7x3 = 21.
    seed = _pixel_priced_seeds({**SPACE, "num_mfcc": None, "strides": [1, 2], "frame_stride_ms": [10, 20, 30, 40]}, seen)
    assert seed(100, tmp_path / "a") == [space.Candidate(4, 2, (4,), (3,), (2,), frame_stride_ms=20)]  # strided (39), not 30 ms (85)
    assert seed(30, tmp_path / "b") == [space.Candidate(4, 2, (4,), (3,), (2,), frame_stride_ms=30)]  # nothing on 20 ms fits
    assert seed(20, tmp_path / "c") == []  # the cheapest, 40 ms strided (21), is over
    assert sorted(set(seen)) == [(25, 10), (33, 10), (49, 10)]
    # Fewer coefficients come before coarser frames: 5 coefficients at 20 ms strided (13x2 = 26) before 10 at 40 ms (21).
    both = _pixel_priced_seeds({**SPACE, "strides": [1, 2], "num_mfcc": [5, 10], "frame_stride_ms": [20, 40]}, seen)
    assert both(30, tmp_path / "d") == [space.Candidate(4, 2, (4,), (3,), (2,), num_mfcc=5, frame_stride_ms=20)]
