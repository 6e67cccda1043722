"""The search's seed trials: the ladder down from the DS-CNN base, within the reference's costs, queued in a fresh
study; and the instruction bound at a share of the reference's. No training: a stand-in target prices candidates."""

import dataclasses
import types

import optuna
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.spec import SearchSpace, parse_spec
from mcuforge.train.search import space
from mcuforge.train.search.front import trial_rows
from mcuforge.train.search.stage import bounded_by_reference, seed_study
from mcuforge.train.search.study import Objective, open_study, queue_seed
from mcuforge.train import trainer
from mcuforge.train.search.target import CandidateCost, DeployTarget

SPACE = {"blocks": [1, 2], "channels": [8, 16], "kernels": [3], "strides": [1, 2], "stem_strides": [2]}


def spec_with(**search):
    return parse_spec({"name": "seeds", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"},
                       "search": {"family": "mobilenet", "space": SPACE, "select": "within_reference", **search}})


def pixels_times_parameters(model, representative) -> CandidateCost:
    """A stand-in price: flash = parameters, instructions = parameters x the last feature map's pixels (strides count)."""
    feature_map = [layer.output_shape for layer in model.layers if len(layer.output_shape) == 4][-1]
    parameters = model.count_params()
    return CandidateCost(flash_bytes=parameters, arena_bytes=1, instructions=parameters * feature_map[1] * feature_map[2], macs=0)


TARGET = DeployTarget(flash_bytes=10**6, ram_bytes=10**6, candidate_cost=pixels_times_parameters, int8_accuracy=lambda *args: 0.25,
                      representative_sample=lambda x: x[:4], reference_cost=None)


def test_the_seeds_are_the_costliest_of_each_width_and_depth_within_the_reference(tmp_path):
    # Parameters by formula (3x3 stem, then depthwise 3x3 + pointwise blocks, batch norms, a 10-class dense layer):
    # 16 channels, 2 blocks: 1,434; 1 block: 906; 8 channels, 2 blocks: 594; 1 block: 394. On 8x8 digits the
    # stride-2 stem leaves 4x4 pixels, a stride-2 block 2x2: 16 channels and 1 block costs 906 x 16 = 14,496,
    # strided 906 x 4 = 3,624; 8 channels, 2 blocks 9,504, strided 2,376; 1 block 6,304, strided 1,576.
    reference = CandidateCost(flash_bytes=1000, arena_bytes=1, instructions=6000, macs=0)  # 16 x 2 blocks: flash 1,434, over
    spec = spec_with(seeds=4)
    seed_study(spec, tmp_path, TARGET, reference, Progress.quiet())
    study, _ = open_study(spec, tmp_path)
    expected = [
        space.Candidate(16, 2, (16,), (3,), (2,)),  # unstrided: 14,496 > 6,000
        space.Candidate(8, 2, (8, 8), (3, 3), (1, 2)),  # unstrided 9,504; the stride at the last block first: 2,376
        space.Candidate(8, 2, (8,), (3,), (2,)),  # unstrided 6,304 > 6,000
    ]  # 3 of the 4 asked: 16 channels and 2 blocks is over the flash at any stride
    trials = study.get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.WAITING] * 3
    assert [space.suggest(study.ask(), spec.search.space) for _ in trials] == expected
    assert [row.note for row in trial_rows(study)] == ["seed"] * 3  # front.csv and front.md say so

    seed_study(spec, tmp_path, TARGET, reference, Progress.quiet())  # a study with trials is not seeded again
    assert len(open_study(spec, tmp_path)[0].get_trials()) == 3


def test_a_queued_candidate_is_drawn_back_as_it_is():
    search_space = SearchSpace(blocks=[1, 3], channels=[8, 16], kernels=[3, 5], strides=[1, 2], stem_strides=[1, 2], num_mfcc=[5, 10])
    candidate = space.Candidate(16, 1, (8, 16, 8), (5, 3, 5), (2, 1, 1), num_mfcc=5)
    short = space.Candidate(8, 2, (16,), (5,), (2,), num_mfcc=10)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for queued in (candidate, short):
        study.enqueue_trial(space.params(queued, search_space))
    assert [space.suggest(study.ask(), search_space) for _ in range(2)] == [candidate, short]


def test_the_instruction_budget_is_the_share_of_the_reference_asked():
    reference = CandidateCost(flash_bytes=1, arena_bytes=1, instructions=1001, macs=0)
    assert bounded_by_reference(spec_with(reference_instructions=0.5), reference).search.max_instructions == 500
    assert bounded_by_reference(spec_with(reference_instructions=0.5, max_instructions=300), reference).search.max_instructions == 300
    whole = spec_with()
    assert bounded_by_reference(whole, reference) == whole


def test_a_seed_trains_all_its_epochs_where_the_pruner_stops_a_drawn_trial(monkeypatch):
    import tf_keras

    epochs_run = []

    def three_epochs_at_half(model, spec, dataset, callbacks=()):
        """Keras' fit as the callbacks see it: each epoch ends with validation accuracy 0.5, unless stopped."""
        for callback in callbacks:
            callback.set_model(model)
            callback.set_params({"epochs": 3})
        model.stop_training = False
        for epoch in range(3):
            epochs_run.append(epoch + 1)
            for callback in callbacks:
                callback.on_epoch_end(epoch, {"val_accuracy": 0.5})
            if model.stop_training:
                break
        return {"val_accuracy": [0.5] * len(epochs_run)}

    monkeypatch.setattr(trainer, "fit", three_epochs_at_half)
    model = tf_keras.Sequential([tf_keras.Input((1,)), tf_keras.layers.Dense(1)])
    objective = Objective(spec_with(), TARGET, None, Progress.quiet())
    study = optuna.create_study()
    queue_seed(study, {"x": 1})
    seed, drawn = study.ask(), study.ask()
    for trial in (seed, drawn):
        trial.suggest_categorical("x", [1, 2])
        trial.set_user_attr("architecture", "a")
    no_data = types.SimpleNamespace(x_val=None, y_val=None)  # the stand-in target's int8 accuracy reads none
    always = optuna.create_study(pruner=optuna.pruners.ThresholdPruner(lower=0.9))  # 0.5 is below: prune at once

    assert objective._train_and_score(seed, model, no_data, None, always) == 0.25 and epochs_run == [1, 2, 3]
    epochs_run.clear()
    with pytest.raises(optuna.TrialPruned):
        objective._train_and_score(drawn, model, no_data, None, always)
    assert epochs_run == [1]


def test_a_candidate_the_engine_refuses_is_no_seed(tmp_path):
    def refused(model, representative):
        if model.get_layer("stem_conv").filters == 16:
            raise MCUForgeError("the mcuforge engine does not implement the options at operator 11 (SOFTMAX)")
        return pixels_times_parameters(model, representative)

    reference = CandidateCost(flash_bytes=1000, arena_bytes=1, instructions=6000, macs=0)  # as above: 3 seeds, one 16 wide
    spec = spec_with(seeds=4)
    seed_study(spec, tmp_path, dataclasses.replace(TARGET, candidate_cost=refused), reference, Progress.quiet())
    study, _ = open_study(spec, tmp_path)
    assert [space.suggest(study.ask(), spec.search.space).stem_channels for _ in study.get_trials()] == [8, 8]
