"""The Optuna study: where it lives, how a trial scores a candidate, and the worker processes that share it.

Each trial draws a candidate, measures its costs on the deploy target (the
DeployTarget the orchestration hands in) and rejects it untrained when it is over
a budget; otherwise it trains for `search.epochs`, reporting the float validation
accuracy after each epoch, and is scored as int8 through TFLM on the validation split.

Seed trials (seeds.py) are never pruned. Optuna's pruners need a single objective (Trial.report is not supported in
multi-objective studies), so each trial's per-epoch scores go to a companion
single-objective study whose pruner (successive halving or Hyperband) decides when
a trial stops. Accuracy alone would stop every cheap candidate early, and cheap
ones are half the front; so candidates are compared only with those of similar
cost: one companion study per power of two of the first cost objective
("<study>-epochs-<log2 cost>"). All live in the same storage: workers on this
machine or others share them, and a search run again with the same study name
resumes with every finished trial kept.

A worker killed mid-trial leaves that trial RUNNING. Such a trial is failed and
retried (the same parameters, queued for the next worker): at once when it ran on
this machine and its process is gone, and in a database storage also through
Optuna's heartbeat (a trial whose worker stopped beating for GRACE_SECONDS, from
any machine). The failed one then no longer counts toward the trial budget; its
retry does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge.config import to_dict
from mcuforge.errors import MCUForgeError
from mcuforge.progress import Progress
from mcuforge.spec import SearchSpec, Spec
from mcuforge.train.search import space
from mcuforge.train.search.target import CandidateCost, DeployTarget

JOURNAL_FILE = "study.journal"
HEARTBEAT_SECONDS = 20  # how often a worker on a database storage marks its running trial alive
GRACE_SECONDS = 120  # a database-storage trial with no heartbeat for this long is failed and retried
MAX_RETRIES = 1
SEED_ATTR = "seed"  # the user attribute queue_seed marks a seed trial with
COST_OBJECTIVES = {"instructions": "instructions", "arena": "arena_bytes", "flash": "flash_bytes"}
# The search settings that change what a trial does: a change starts a new study.
RUN_SETTINGS = ("trials", "minutes", "select", "within_points", "finalists", "finalist_epochs", "finalist_pool", "workers", "storage")


@dataclass(frozen=True)
class Budgets:
    """What a candidate may cost: flash and arena (the target's by default) and optionally instructions."""

    flash_bytes: int
    arena_bytes: int
    instructions: int | None

    @classmethod
    def of(cls, search: SearchSpec, target: DeployTarget) -> Budgets:
        return cls(search.max_flash_bytes or target.flash_bytes, search.max_arena_bytes or target.ram_bytes, search.max_instructions)

    def exceeded(self, cost: CandidateCost) -> list[str]:
        """One phrase per budget `cost` is over, with both numbers."""
        over = []
        if cost.flash_bytes > self.flash_bytes:
            over.append(f"flash {cost.flash_bytes} B > {self.flash_bytes} B")
        if cost.arena_bytes > self.arena_bytes:
            over.append(f"arena {cost.arena_bytes} B > {self.arena_bytes} B")
        if self.instructions is not None and cost.instructions > self.instructions:
            over.append(f"{cost.instructions} instructions > {self.instructions}")
        return over


def study_name(spec: Spec) -> str:
    """The spec's name and a digest of everything a trial depends on (data, training, target, space, objectives)."""
    search = {k: v for k, v in to_dict(spec.search).items() if k not in RUN_SETTINGS}
    search["space"] = {k: v for k, v in search["space"].items() if v is not None}  # an unsearched option leaves names as they were
    key = {"data": to_dict(spec.data), "train": to_dict(spec.train), "deploy": to_dict(spec.deploy), "search": search}
    return f"{spec.name}-{hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:10]}"


def storage_of(search: SearchSpec, directory: Path):
    """The study's storage: the spec's database URL (with Optuna's heartbeat), else a journal file in `directory`
    (safe for several processes on one machine)."""
    import optuna

    if search.storage:
        return optuna.storages.RDBStorage(
            search.storage, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS, heartbeat_stale_trial_callback=retry_trial
        )
    directory.mkdir(parents=True, exist_ok=True)
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(directory / JOURNAL_FILE)))


def storage_description(search: SearchSpec, directory: Path) -> str:
    return search.storage or str(directory / JOURNAL_FILE)


def directions(search: SearchSpec) -> list[str]:
    return ["maximize" if objective == "accuracy" else "minimize" for objective in search.objectives]


def _sampler(search: SearchSpec, seed: int):
    import optuna

    # Small trial budgets get small generations / few random start-up trials, so the sampler acts within them.
    startup = max(4, min(50, (search.trials or 60) // 3))
    if search.sampler == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True)
    return optuna.samplers.NSGAIISampler(seed=seed, population_size=startup)


def _pruner(search: SearchSpec):
    import optuna

    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=search.epochs, reduction_factor=3)
    if search.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=3)
    return optuna.pruners.NopPruner()


def open_study(spec: Spec, directory: Path, worker: int = 0):
    """(search study, its storage) in the spec's storage, created or joined.

    The sampler's seed is the spec's, offset by the worker and by the trials already
    in the study, so workers and resumed runs do not redraw the same candidates
    while a fresh single-worker search is reproducible.
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    search = spec.search
    storage = storage_of(search, directory)
    name = study_name(spec)
    study = optuna.create_study(storage=storage, study_name=name, directions=directions(search), load_if_exists=True)
    retry_dead_workers_trials(study, storage)
    seed = search.seed + 1000 * worker + len(study.get_trials(deepcopy=False))
    study.sampler = _sampler(search, seed)
    return study, storage


def process_identity(pid: int) -> str | None:
    """This machine's name, `pid` and its start time (from /proc): a pid reused by a later process differs.
    None when no such process runs."""
    try:
        start = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]  # field 22, starttime
    except (OSError, IndexError):
        return None
    return f"{socket.gethostname()}:{pid}:{start}"


def retry_trial(study, trial) -> None:
    """Queue a failed trial again: a WAITING trial with its parameters, which the next trial of any worker runs
    (once: a candidate that kills its worker twice stays failed). Optuna's heartbeat calls this too."""
    import optuna

    history = [*trial.system_attrs.get("retry_history", []), trial.number]
    if len(history) > MAX_RETRIES:
        return
    # user attributes are not carried over: the retry's are its own run's
    study.add_trial(optuna.create_trial(state=optuna.trial.TrialState.WAITING, params=trial.params, distributions=trial.distributions,
                                        system_attrs={"retry_history": history}))


def retry_dead_workers_trials(study, storage) -> list[int]:
    """Fail and retry (retry_trial) each RUNNING trial whose worker ran on this machine and is gone (killed
    mid-trial); the numbers of the trials failed. `storage` is the study's (open_study's)."""
    import optuna

    host = f"{socket.gethostname()}:"
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.RUNNING,)):
        process = trial.user_attrs.get("process", "")
        if not process.startswith(host) or process_identity(int(process.split(":")[1])) == process:
            continue  # another machine's (the heartbeat's job), or alive
        if fail_foreign_trial(study, storage, trial.number, f"its worker ({trial.user_attrs['worker']}) died mid-trial"):
            retry_trial(study, trial)  # its parameters, as the dead worker left them
            failed.append(trial.number)
    return failed


def fail_foreign_trial(study, storage, number: int, reason: str) -> bool:
    """Mark RUNNING trial `number`, which another (dead) process ran, failed with `reason` (its `fail_reason` system
    attribute); False when another worker failed it first.

    Optuna's public API can fail it (Study.tell) but cannot say why on a trial this process did not start (a
    trial sets only its own attributes), nor tell which of two workers racing to fail it won. So this one
    function goes through the storage's interface (BaseStorage, Optuna's internal one, as its heartbeat does
    for stale trials): tests/test_search_study.py::test_a_dead_workers_trial_is_failed_once_with_its_reason
    fails if a new Optuna changes it.
    """
    import optuna

    trial_id = storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), number)
    try:
        storage.set_trial_system_attr(trial_id, "fail_reason", reason)
        return storage.set_trial_state_values(trial_id, state=optuna.trial.TrialState.FAIL)
    except optuna.exceptions.UpdateFinishedTrialError:
        return False  # another worker failed it first


def retries(study) -> dict[int, int]:
    """{failed trial: the trial that retried it} for trials whose worker died (retry_trial)."""
    return {trial.system_attrs["retry_history"][-1]: trial.number for trial in study.get_trials(deepcopy=False)
            if trial.system_attrs.get("retry_history")}


def cost_class(search: SearchSpec, cost: CandidateCost) -> int:
    """The power of two of the candidate's first cost objective (instructions when accuracy is the only one)."""
    costs = [objective for objective in search.objectives if objective != "accuracy"] or ["instructions"]
    return int(np.log2(max(1, getattr(cost, COST_OBJECTIVES[costs[0]]))))


def epochs_study(spec: Spec, storage, cost: CandidateCost):
    """The companion study holding per-epoch validation accuracy of the candidates in this one's cost class."""
    import optuna

    name = f"{study_name(spec)}-epochs-{cost_class(spec.search, cost)}"
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", pruner=_pruner(spec.search), load_if_exists=True)


def queue_seed(study, params: dict) -> None:
    """Queue a seed trial (seeds.py): `params` drawn back as they are, marked so that is_seed knows it."""
    study.enqueue_trial(params, user_attrs={SEED_ATTR: True})


def is_seed(trial) -> bool:
    """Whether the trial (running or frozen) was queued by queue_seed (a retry of a dead worker's trial is not: user
    attributes are not carried over)."""
    return bool(trial.user_attrs.get(SEED_ATTR))


def finished(study) -> int:
    """Trials that count toward the budget: every finished one but those failed with their worker and retried."""
    import optuna

    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED, optuna.trial.TrialState.FAIL)
    return len({trial.number for trial in study.get_trials(deepcopy=False, states=states)} - set(retries(study)))


class Objective:
    """Scores one trial's candidate: costs, then (within budget) brief training with pruning, then int8 accuracy."""

    def __init__(self, spec: Spec, target: DeployTarget, storage, progress: Progress) -> None:
        self.spec = spec
        self.search = spec.search
        self.target = target
        self.storage = storage
        self.progress = progress
        self.data = space.CandidateData(spec, target.representative_sample)
        self.budgets = Budgets.of(spec.search, target)
        self.train_spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, epochs=self.search.epochs))

    def __call__(self, trial) -> list[float]:
        import optuna

        started = time.perf_counter()
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # which machine and process ran it
        trial.set_user_attr("process", process_identity(os.getpid()))  # to tell, after a crash, whether it still runs
        candidate = space.suggest(trial, self.search.space)
        trial.set_user_attr("architecture", candidate.describe())
        trial.set_user_attr("model", to_dict(candidate.model_spec(self.search.family)))
        for name, value in candidate.data_options().items():
            trial.set_user_attr(name, value)
        earlier = self._same_architecture(trial.study, candidate.describe())
        if earlier is not None:  # parameters unused by fewer blocks: the same model, already scored
            for key in ("rejected", "pruned_after_epochs", *COST_OBJECTIVES.values(), "macs", "accuracy", "val_float_accuracy"):
                if key in earlier.user_attrs:
                    trial.set_user_attr(key, earlier.user_attrs[key])
            trial.set_user_attr("same_as", earlier.number)
            if earlier.state == optuna.trial.TrialState.PRUNED:
                raise optuna.TrialPruned(f"same architecture as trial {earlier.number}")
            return list(earlier.values)
        dataset, representative = self.data(candidate)
        model = space.build(candidate, self.search, dataset.input_shape, dataset.num_classes, self.spec.train.seed)
        cost = self.target.candidate_cost(model, representative)
        for key, value in dataclasses.asdict(cost).items():
            trial.set_user_attr(key, value)
        over = self.budgets.exceeded(cost)
        if over:
            trial.set_user_attr("rejected", "; ".join(over))
            self.progress.line(f"trial {trial.number}: {candidate.describe()}: rejected untrained ({'; '.join(over)})")
            raise optuna.TrialPruned("over budget: " + "; ".join(over))
        accuracy = self._train_and_score(trial, model, dataset, representative, epochs_study(self.spec, self.storage, cost))
        trial.set_user_attr("accuracy", accuracy)
        trial.set_user_attr("seconds", round(time.perf_counter() - started, 2))
        self.progress.line(
            f"trial {trial.number}: {candidate.describe()}: int8 val accuracy {accuracy:.4f}, "
            f"{cost.instructions} instructions, arena {cost.arena_bytes} B, flash {cost.flash_bytes} B"
        )
        values = {"accuracy": accuracy, **{name: getattr(cost, field) for name, field in COST_OBJECTIVES.items()}}
        return [float(values[objective]) for objective in self.search.objectives]

    def _same_architecture(self, study, architecture: str):
        import optuna

        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        for earlier in study.get_trials(deepcopy=False, states=states):
            if earlier.user_attrs.get("architecture") == architecture:
                return earlier
        return None

    def _train_and_score(self, trial, model, dataset, representative, epochs) -> float:
        """Fit with the pruner watching each epoch's float validation accuracy; the int8 TFLM validation accuracy."""
        import optuna
        import tf_keras

        from mcuforge.train.trainer import fit

        shadow = epochs.ask()
        shadow.set_user_attr("search_trial", trial.number)
        pruned_after: list[int] = []
        prunable = not is_seed(trial)  # a seed trains all its epochs: one epoch ranks candidates too poorly to drop it

        class ReportEpochs(tf_keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                shadow.report(float(logs["val_accuracy"]), epoch + 1)
                if prunable and epoch + 1 < self.params["epochs"] and shadow.should_prune():
                    pruned_after.append(epoch + 1)
                    self.model.stop_training = True

        try:
            history = fit(model, self.train_spec, dataset, callbacks=(ReportEpochs(),))
        except BaseException:
            epochs.tell(shadow, state=optuna.trial.TrialState.FAIL)
            raise
        trial.set_user_attr("val_float_accuracy", history["val_accuracy"][-1])
        if pruned_after:
            epochs.tell(shadow, state=optuna.trial.TrialState.PRUNED)
            trial.set_user_attr("pruned_after_epochs", pruned_after[0])
            self.progress.line(
                f"trial {trial.number}: {trial.user_attrs['architecture']}: pruned after {pruned_after[0]} epochs "
                f"(float val accuracy {history['val_accuracy'][-1]:.4f})"
            )
            raise optuna.TrialPruned(f"pruned after {pruned_after[0]} epochs")
        epochs.tell(shadow, history["val_accuracy"][-1])
        return self.target.int8_accuracy(model, representative, dataset.x_val, dataset.y_val)


def trials_to_run(spec: Spec, study, worker: int, workers: int) -> int | None:
    """This worker's share of the trials the study still needs (None: until the minutes run out)."""
    if spec.search.trials is None:
        return None
    remaining = max(0, spec.search.trials - finished(study))
    return remaining // workers + (1 if worker < remaining % workers else 0)


def run_worker(spec: Spec, directory: Path, target: DeployTarget, worker: int, workers: int, deadline: float | None,
               progress: Progress) -> None:
    """One process's share of the search, until its trials are done or the wall-clock deadline passes."""
    study, storage = open_study(spec, directory, worker)
    count = trials_to_run(spec, study, worker, workers)
    if count == 0:
        return
    timeout = None if deadline is None else max(0.0, deadline - time.time())
    if timeout == 0.0:
        return
    objective = Objective(spec, target, storage, progress)
    study.optimize(objective, n_trials=count, timeout=timeout, catch=(MCUForgeError,))  # a candidate the converter or TFLM refuses fails alone


def _worker_process(spec: Spec, directory: str, target: DeployTarget, worker: int, workers: int, deadline: float | None) -> None:
    """Entry point of a spawned worker: quiet TensorFlow, lines prefixed with the worker."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from mcuforge.tf_logs import quiet_python_logs

    quiet_python_logs()
    import sys

    class Prefixed(Progress):
        def line(self, text: str) -> None:
            super().line(f"worker {worker}: {text}")

    run_worker(spec, Path(directory), target, worker, workers, deadline, Prefixed(sys.stderr, False))


def run_search(spec: Spec, directory: Path, target: DeployTarget, progress: Progress) -> None:
    """Run the spec's search with `search.workers` processes (in this process when one)."""
    search = spec.search
    deadline = None if search.minutes is None else time.time() + 60 * search.minutes
    if search.workers == 1:
        run_worker(spec, directory, target, 0, 1, deadline, progress)
        return
    import multiprocessing

    context = multiprocessing.get_context("spawn")  # TensorFlow does not survive fork
    open_study(spec, directory)  # created once here, so the workers join it instead of racing to create it
    processes = [
        context.Process(target=_worker_process, args=(spec, str(directory), target, worker, search.workers, deadline))
        for worker in range(search.workers)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join()
    failed = [i for i, process in enumerate(processes) if process.exitcode != 0]
    if failed:
        raise MCUForgeError(
            f"search worker(s) {', '.join(map(str, failed))} failed (exit status "
            f"{', '.join(str(processes[i].exitcode) for i in failed)}); their error is printed above. "
            "Finished trials are kept: run the search again to resume"
        )
