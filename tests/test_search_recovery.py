"""A search worker killed mid-trial, and a worker from another directory joining the study through a database URL.

Two processes started in different working directories (as two machines would be)
share one study only through `--storage sqlite:///...`: the first is SIGKILLed
while its trial runs; the second must find that trial stale, fail it, retry its
candidate and finish the trial budget, with the dead trial accounted for.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
import yaml

from mcuforge.spec import parse_spec
from mcuforge.train.search.study import study_name

MCUFORGE = Path(sys.executable).parent / "mcuforge"
SPEC = {
    "name": "search-recovery",
    "data": {"dataset": "digits"},
    "model": {"arch": "tiny_cnn"},
    "train": {"epochs": 1, "batch_size": 64},
    "search": {
        "family": "mobilenet",
        "space": {"blocks": [1], "channels": [4, 8], "kernels": [3], "strides": [2], "stem_strides": [2]},
        "epochs": 1,
        "pruner": "none",
    },
}
TRIALS = 2


def search(machine: Path, url: str) -> list[str]:
    machine.mkdir()
    (machine / "spec.yaml").write_text(yaml.safe_dump(SPEC))
    return [str(MCUFORGE), "search", "spec.yaml", "--storage", url, "--trials", str(TRIALS), "--root", "build"]


@pytest.mark.slow
def test_a_killed_workers_trial_is_failed_retried_and_the_budget_still_completes_from_another_directory(tmp_path):
    url = f"sqlite:///{tmp_path / 'db' / 'study.db'}"
    (tmp_path / "db").mkdir()
    storage = optuna.storages.RDBStorage(url)
    name = study_name(parse_spec(SPEC))

    first = subprocess.Popen(search(tmp_path / "a", url), cwd=tmp_path / "a", start_new_session=True,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    running = []
    while not running and first.poll() is None and time.time() < deadline:
        time.sleep(0.2)
        if name in optuna.get_all_study_names(storage):
            trials = optuna.load_study(study_name=name, storage=storage).get_trials()
            running = [t for t in trials if t.state == optuna.trial.TrialState.RUNNING and "architecture" in t.user_attrs]
    assert running, f"the first worker never started a trial: {first.stderr.read() if first.poll() is not None else 'timed out'}"
    os.killpg(first.pid, signal.SIGKILL)  # mid-trial: its costs are being measured or it trains
    first.wait()
    [killed] = running
    assert optuna.load_study(study_name=name, storage=storage).get_trials()[killed.number].state == optuna.trial.TrialState.RUNNING

    second = subprocess.run(search(tmp_path / "b", url), cwd=tmp_path / "b", capture_output=True, text=True, timeout=600)
    assert second.returncode == 0, second.stderr
    trials = optuna.load_study(study_name=name, storage=storage).get_trials()
    dead = trials[killed.number]
    assert dead.state == optuna.trial.TrialState.FAIL
    assert dead.system_attrs["fail_reason"] == f"its worker ({killed.user_attrs['worker']}) died mid-trial"
    [retry] = [t for t in trials if t.system_attrs.get("retry_history") == [killed.number]]
    assert retry.state == optuna.trial.TrialState.COMPLETE and retry.params == dead.params
    assert retry.user_attrs["worker"] != dead.user_attrs["worker"]
    counted = [t for t in trials if t.state.is_finished() and t.number != killed.number]
    assert len(counted) == TRIALS and len(trials) == TRIALS + 1  # the dead trial does not use up the budget
    assert "1 failed" in second.stdout and f"{TRIALS + 1} trials" in second.stdout

    result = tmp_path / "b" / "build" / SPEC["name"] / "search" / "result"
    front = yaml.safe_load((result / "front.json").read_text())  # JSON is YAML
    assert front[killed.number]["state"] == "failed"
    assert front[killed.number]["note"].endswith(f"died mid-trial; retried as trial {retry.number}")
    assert front[retry.number]["note"] == f"retry of trial {killed.number}"
    for machine in ("a", "b"):  # the study lived only in the database
        assert not list((tmp_path / machine).rglob("study.journal"))
