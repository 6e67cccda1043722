"""The search's final selection: which trials are finalists, the pick by their score after the final training, and
that a finalist is trained exactly as the train stage trains the chosen model (tiny digits model, two epochs)."""

import dataclasses

import optuna
import pytest

from mcuforge.config import parse_dataclass
from mcuforge.pipeline import search_target
from mcuforge.progress import Progress
from mcuforge.spec import ModelSpec, SearchSpec, parse_spec
from mcuforge.train import trainer
from mcuforge.train.search import finalists as final_selection
from mcuforge.train.search.finalists import finalists, score_finalists
from mcuforge.train.search.front import TrialRow, choose
from mcuforge.train.search.target import CandidateCost

REFERENCE = CandidateCost(flash_bytes=1000, arena_bytes=500, instructions=10_000, macs=1)
MODEL = {"arch": "separable_cnn", "width": 1.0,
         "options": {"stem_channels": 4, "stem_kernel": [3, 3], "stem_stride": 2, "channels": [4], "kernels": [3], "strides": [2]}}


def row(number, accuracy, instructions=100, final=None, architecture=None, on_front=True, model=None):
    return TrialRow(number, "complete", architecture or f"arch {number}", instructions, 100, 100, 1, accuracy, accuracy, "",
                    on_front, model or {}, final_accuracy=final)


def spec_with(search: dict, epochs: int = 30):
    return parse_spec({"name": "finalists", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"},
                       "train": {"epochs": epochs, "batch_size": 64}, "search": search})


def test_the_pick_is_among_the_finalists_by_their_score_after_the_final_training():
    rows = [row(0, 0.95, final=0.90), row(1, 0.93, final=0.97), row(2, 0.99, on_front=False), row(3, 0.80)]
    assert choose(rows, SearchSpec()).number == 1  # the search ranked trial 0 first; trained again, trial 1 is ahead
    fast = [row(0, 0.95, 900, final=0.96), row(1, 0.93, 300, final=0.955), row(2, 0.92, 100, final=0.94)]
    assert choose(fast, SearchSpec(select="fastest_within", within_points=1.0)).number == 1  # within 1 point of 0.96
    assert choose([dataclasses.replace(r, final_accuracy=None) for r in fast], SearchSpec(select="fastest_within")).number == 0


def test_finalists_are_the_first_distinct_architectures_the_rule_may_pick():
    rows = [
        row(0, 0.99, instructions=20_000),  # over the reference's instructions: not eligible
        row(1, 0.90), row(2, 0.97), row(3, 0.97, architecture="arch 2"),  # trial 3 repeats trial 2's model
        row(4, 0.95), row(5, 0.94),
    ]
    spec = spec_with({"select": "within_reference", "finalists": 3, "epochs": 3})
    assert [r.number for r in finalists(rows, spec, REFERENCE)] == [2, 4, 5]
    assert finalists(rows, dataclasses.replace(spec, search=dataclasses.replace(spec.search, finalists=0)), REFERENCE) == []
    # a final training no longer than the search's would repeat it: the search scores stand
    assert finalists(rows, spec_with({"select": "within_reference", "epochs": 3}, epochs=3), REFERENCE) == []


def test_a_finalist_pool_is_screened_for_a_third_of_the_final_epochs_and_only_its_best_trained_in_full(monkeypatch):
    after = {(0, 10): 0.80, (1, 10): 0.90, (2, 10): 0.85, (3, 10): 0.70, (0, 30): 0.91, (1, 30): 0.93, (2, 30): 0.95}  # (trial, epochs)
    trained = []

    def train_and_score(spec, row, epochs, target):
        trained.append((row.number, epochs))
        return after[row.number, epochs]

    monkeypatch.setattr(final_selection, "train_and_score", train_and_score)
    spec = spec_with({"finalists": 2, "finalist_pool": 4, "epochs": 3}, epochs=30)
    rows = [row(0, 0.99), row(1, 0.98), row(2, 0.97), row(3, 0.96), row(4, 0.95)]
    study = optuna.create_study(directions=["maximize", "minimize"])
    scored = score_finalists(spec, study, rows, None, None, Progress.quiet())
    assert trained == [(0, 10), (1, 10), (2, 10), (3, 10), (1, 30), (2, 30)]  # the search's top 4, then the screen's top 2
    assert [r.screen_accuracy for r in scored] == [0.80, 0.90, 0.85, 0.70, None]
    assert [r.final_accuracy for r in scored] == [None, 0.93, 0.95, None, None]
    assert choose(scored, spec.search).number == 2
    assert score_finalists(spec, study, rows, None, None, Progress.quiet()) == scored and len(trained) == 6  # kept in the study
    no_pool = dataclasses.replace(spec, search=dataclasses.replace(spec.search, finalist_pool=2))
    trained.clear()
    assert [r.final_accuracy for r in score_finalists(no_pool, study, rows, None, None, Progress.quiet())] == [0.91, 0.93, None, None, None]
    assert trained == [(0, 30)]  # a pool no larger than the finalists: no screening, the search's top two (trial 1's score kept)


@pytest.mark.slow
def test_a_finalist_is_trained_like_the_train_stage_scored_on_the_validation_split_and_once(tmp_path, monkeypatch):
    spec = spec_with({"finalists": 1, "epochs": 1}, epochs=2)
    scored_models = []

    def int8_accuracy(model, representative, x, y):  # records what the search would convert and score through TFLM
        scored_models.append((model.get_weights(), x, y))
        return 0.75

    target = dataclasses.replace(search_target(spec), int8_accuracy=int8_accuracy)
    study = optuna.create_study(directions=["maximize", "minimize"])
    rows = [row(0, 0.5, model=MODEL), row(1, 0.4, model=MODEL, architecture="arch 1")]
    scored = score_finalists(spec, study, rows, None, target, Progress.quiet())
    assert [r.final_accuracy for r in scored] == [0.75, None]

    # the oracle: the train stage's own training of that model section, weight for weight
    trained = trainer.train(dataclasses.replace(spec, model=parse_dataclass(ModelSpec, MODEL, "model")), tmp_path / "train")
    expected = trainer.load_model(tmp_path / "train" / trained.model).get_weights()
    dataset = trainer.load_dataset(spec)
    [(weights, x, y)] = scored_models
    assert len(weights) == len(expected) and all((w == e).all() for w, e in zip(weights, expected))
    assert x.shape == dataset.x_val.shape and (x == dataset.x_val).all() and (y == dataset.y_val).all()

    monkeypatch.setattr(trainer, "fit", lambda *args, **kwargs: (_ for _ in ()).throw(AssertionError("trained again")))
    assert score_finalists(spec, study, rows, None, target, Progress.quiet()) == scored  # kept in the study


def test_finalists_are_counted_and_one_counted_over_the_instruction_budget_is_not_picked(tmp_path):
    counts = {4: 180, 8: 90}  # the stand-in count by the model's stem channels: trial 0's model over the budget of 100
    measured = []

    def reference_cost(model, representative, directory):  # records what the search would count under QEMU
        measured.append(directory.name)
        return CandidateCost(flash_bytes=1, arena_bytes=1, instructions=counts[next(layer for layer in model.layers if hasattr(layer, "filters")).filters], macs=1)

    spec = spec_with({"select": "within_reference", "finalists": 2, "epochs": 3, "max_instructions": 100})
    target = dataclasses.replace(search_target(spec), reference_cost=reference_cost)
    wider = {**MODEL, "options": {**MODEL["options"], "stem_channels": 8}}
    rows = [row(0, 0.99, 95, final=0.95, model=MODEL), row(1, 0.98, 95, final=0.94, model=wider, architecture="arch 1"), row(2, 0.90, 95)]
    study = optuna.create_study(directions=["maximize", "minimize"])
    counted = final_selection.counted_finalists(spec, study, rows, target, tmp_path)
    assert [r.instructions for r in counted] == [180, 90, 95] and measured == ["trial0", "trial1"]  # the third is no finalist
    assert choose(counted, spec.search, REFERENCE).number == 1  # trial 0 scored higher but counts over the budget
    assert choose(rows, spec.search, REFERENCE).number == 0  # by the predicted counts it would have been picked
    assert final_selection.counted_finalists(spec, study, rows, target, tmp_path) == counted and len(measured) == 2  # kept
