"""Architecture search on digits, tiny, in one pass (every step trains, so they share it): two workers on
one study, a rerun that resumes it, candidates over the flash budget rejected without training, and
`run` carrying the chosen model through to firmware that matches TFLM."""

import os
import socket
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import yaml

from mcuforge.pipeline import STAGES, run_pipeline
from mcuforge.results import FirmwareResult, SearchResult
from mcuforge.spec import parse_spec
from mcuforge.train import trainer
from mcuforge.train.search.study import (fail_foreign_trial, is_seed, open_study, process_identity, queue_seed,
                                          retry_dead_workers_trials, storage_of)

MCUFORGE = Path(sys.executable).parent / "mcuforge"
TINY = {
    "name": "search-digits",
    "data": {"dataset": "digits"},
    "model": {"arch": "tiny_cnn"},
    "train": {"epochs": 1, "batch_size": 64},
    "compress": {"steps": []},
    "search": {
        "family": "mobilenet",
        "space": {"blocks": [1], "channels": [4, 32], "kernels": [3], "strides": [2], "stem_strides": [2]},
        "epochs": 1,
        "trials": 4,
        "pruner": "none",
        # Measured with the space's candidates on cortex-m4-256k: a 4-channel stem needs 1,840 B (4-channel block)
        # or 2,568 B (32-channel block); a 32-channel stem 3,120 or 4,632 B.
        "max_flash_bytes": 2800,
    },
}
BUDGET = TINY["search"]["max_flash_bytes"]


@pytest.mark.parametrize("storage_url", [None, "sqlite"])
def test_a_dead_workers_trial_is_failed_once_with_its_reason_and_retried_as_no_seed(tmp_path, storage_url):
    """Through Optuna's storage interface (study.fail_foreign_trial): a journal file and a database (which Optuna
    wraps in its cache) both keep the failure and its reason."""
    url = storage_url and f"sqlite:///{tmp_path / 'study.db'}"
    search = parse_spec({**TINY, "search": {**TINY["search"], "storage": url}}).search
    storage = storage_of(search, tmp_path)
    study = optuna.create_study(storage=storage, study_name="dead")
    queue_seed(study, {"x": 1})
    seed = study.ask()
    seed.suggest_categorical("x", [1, 2])
    seed.set_user_attr("worker", "w0")
    seed.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}:0")  # this pid, another start time: gone
    alive = study.ask()
    alive.set_user_attr("process", process_identity(os.getpid()))  # this very process: running
    assert is_seed(seed) and not is_seed(alive)

    assert retry_dead_workers_trials(study, storage) == [seed.number]
    assert not fail_foreign_trial(study, storage, seed.number, "again")  # failed already: no second retry
    trials = optuna.load_study(study_name="dead", storage=storage_of(search, tmp_path)).get_trials()
    assert trials[seed.number].state == optuna.trial.TrialState.FAIL
    assert trials[seed.number].system_attrs["fail_reason"] == "its worker (w0) died mid-trial"
    assert is_seed(trials[seed.number])
    assert trials[alive.number].state == optuna.trial.TrialState.RUNNING
    [retry] = [t for t in trials if t.state == optuna.trial.TrialState.WAITING]
    assert retry.params == {"x": 1} and retry.system_attrs["retry_history"] == [seed.number] and not is_seed(retry)


def trials_that_trained(storage) -> set[int]:
    """Search trials with a record in a per-epoch companion study: the ones whose training began."""
    started = set()
    for name in optuna.get_all_study_names(storage):
        if "-epochs-" in name:
            started |= {t.user_attrs["search_trial"] for t in optuna.load_study(study_name=name, storage=storage).get_trials()}
    return started


@pytest.mark.slow
def test_two_workers_share_a_study_a_rerun_resumes_rejects_over_budget_and_run_builds_the_chosen_model(tmp_path, monkeypatch):
    spec_path = tmp_path / "spec.yaml"
    spec_path.write_text(yaml.safe_dump(TINY))
    ran = subprocess.run(
        [str(MCUFORGE), "search", str(spec_path), "--workers", "2", "--trials", "2", "--root", str(tmp_path / "build")],
        capture_output=True, text=True, timeout=600,
    )
    assert ran.returncode == 0, ran.stderr
    spec = parse_spec(TINY)
    study_dir = tmp_path / "build" / "search-digits" / "search"
    assert (study_dir / "study.journal").is_file()
    study, _ = open_study(spec, study_dir)
    first = study.get_trials()
    assert len(first) == 2 and all(t.state.is_finished() for t in first)
    assert len({t.user_attrs["worker"] for t in first}) == 2  # one trial from each process

    fits = []
    real_fit = trainer.fit
    monkeypatch.setattr(trainer, "fit", lambda *args, **kwargs: fits.append(1) or real_fit(*args, **kwargs))
    stages = tuple(s for s in STAGES if s.name in ("search", "train", "deploy", "firmware"))
    result = run_pipeline(spec, tmp_path / "build", vectors=2, stages=stages)
    assert [s.name for s in result.stages] == ["search", "train", "deploy", "firmware"]

    study, storage = open_study(spec, study_dir)
    trials = study.get_trials()
    assert len(trials) == 4  # the spec asks for 4: the two finished trials are kept, two more ran
    assert [(t.number, t.params, t.values) for t in trials[:2]] == [(t.number, t.params, t.values) for t in first]
    over = [t for t in trials if t.user_attrs["flash_bytes"] > BUDGET]
    assert over, "the seeded sampler drew no over-budget candidate: this test needs one"
    for trial in over:
        assert trial.state == optuna.trial.TrialState.PRUNED
        assert trial.user_attrs["rejected"] == f"flash {trial.user_attrs['flash_bytes']} B > {BUDGET} B"
    trained = trials_that_trained(storage)
    fresh = {t.number for t in trials if t not in over and "same_as" not in t.user_attrs}
    assert trained == fresh  # never the over-budget ones
    assert len(fits) == len(fresh & {2, 3}) + 1  # this process: its new within-budget trials, then the final training

    searched = result.stages[0].result
    assert isinstance(searched, SearchResult) and (searched.trials, searched.rejected) == (4, len(over))
    assert searched.flash_bytes <= BUDGET
    chosen = yaml.safe_load((result.stages[0].directory / searched.fragment).read_text())["model"]
    assert chosen == {"arch": "separable_cnn", "width": 1.0, "options": searched.chosen_model.options}
    assert result.stages[1].result.metrics["arch"] == "separable_cnn"
    firmware = result.stages[3].result
    assert isinstance(firmware, FirmwareResult) and firmware.identical_to_tflm == firmware.vectors == 2
    assert firmware.size.flash_used <= firmware.size.flash_limit and firmware.size.ram_used <= firmware.size.ram_limit
    for name in ("front.csv", "front.json", "front.md", "front.png"):
        assert (result.stages[0].directory / name).stat().st_size > 0
