"""SecAgg+ (train/federated/secure.py): the same model as plain FedAvg within the protocol's quantization
bound, rounds that survive dropouts up to its threshold and stop beyond it, and spec checks."""

import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml

from mcuforge.config import parse_dataclass
from mcuforge.errors import MCUForgeError
from mcuforge.spec import Spec
from mcuforge.train.federated.faults import DROP, fate
from mcuforge.train.federated.secure import QUANTIZATION_RANGE, aggregation_error_bound, check_secure

REPO = Path(__file__).resolve().parent.parent
CLIENTS, DROPOUT, CLIPPING = 3, 0.4, 8.0


def dropped(seed: int, server_round: int) -> set[int]:
    return {c for c in range(CLIENTS) if fate(seed, server_round, c, DROPOUT, 0.0) == DROP}


# A seed whose first round loses one client of three (within the threshold of 2 of 3 shares) and whose
# second round loses two (beyond it): the same run shows both sides of the threshold.
SEED = next(s for s in range(1000) if [len(dropped(s, 1)), len(dropped(s, 2))] == [1, 2])


def spec_dict(**federated):
    return {
        "name": "fedsecure",
        "data": {"dataset": "digits", "seed": 0},
        "model": {"arch": "tiny_cnn", "width": 0.25},
        "train": {"batch_size": 32, "learning_rate": 0.01, "seed": SEED},
        "deploy": {"representative_samples": 50},
        "compress": {"steps": []},
        "federated": {"rounds": 2, "clients": CLIENTS, "alpha": 100.0, "dropout": DROPOUT, "min_clients": 1, **federated},
    }


SECURE = {"shares": 3, "threshold": 2, "clipping_range": CLIPPING}


@pytest.fixture(scope="module")
def secure_run():
    # Ray's socket paths live under the build root and must stay short: not under pytest's tmp_path.
    root = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp")) / "build"
    root.mkdir()
    spec = root / "fedsecure.yaml"
    spec.write_text(yaml.safe_dump(spec_dict(secure_aggregation=SECURE)))
    ran = subprocess.run(
        [str(Path(sys.executable).parent / "mcuforge"), "federate", str(spec), "--root", str(root)],
        capture_output=True, text=True, cwd=REPO, timeout=600,
    )
    yield ran, root / "fedsecure" / "federate"
    shutil.rmtree(root.parent, ignore_errors=True)


@pytest.mark.slow
def test_secagg_gives_plain_fedavg_within_its_quantization_bound_and_stops_beyond_its_threshold(secure_run):
    from federated_oracle import client_fits, fedavg

    from mcuforge.train.federated.partition import client_partitions
    from mcuforge.train.trainer import build_model, load_dataset, load_model

    ran, out = secure_run
    assert ran.returncode == 0, ran.stderr[-3000:]
    first, second = json.loads((out / "rounds.json").read_text())
    # Round 1: one client dropped mid-protocol; its masks were recovered from its neighbours' shares and the
    # two others' sum aggregated. Round 2: two dropped, too few shares: no aggregation, the model is kept.
    assert first["aggregated"] and first["clients"] == sorted(set(range(CLIENTS)) - dropped(SEED, 1))
    assert not second["aggregated"]

    spec = parse_dataclass(Spec, spec_dict(secure_aggregation=SECURE))
    dataset = load_dataset(spec)
    start = build_model(spec, dataset)
    answers = client_fits(spec, CLIENTS, 1, start)
    assert len(answers) == 2
    expected = fedavg(answers, start)
    secure = load_model(out / "model.h5").get_weights()
    peak = max(float(np.max(np.abs(w))) for weights, _ in answers for w in weights)
    assert peak <= CLIPPING  # nothing was clipped: the bound below is all the difference there can be
    max_weight = max(len(p) for p in client_partitions(spec, dataset))
    bound = aggregation_error_bound([count for _, count in answers], max_weight, CLIPPING, peak)
    error = max(float(np.max(np.abs(s - e))) for s, e in zip(secure, expected))
    # The bound is of the order of a quantization step (2 * 8 / 2**22 ~ 4e-6) per client: tight, not a loose tolerance.
    assert bound < 1e-4
    assert error <= bound, (error, bound)
    assert error > 0  # the weights did go through SecAgg+'s quantization (a plain average would match to float rounding)
    print(f"SecAgg+ vs FedAvg: max |difference| {error:.3g}, bound {bound:.3g}")


def test_error_bound_follows_the_quantization_step():
    # Two clients of equal size at max_weight: ratios 1, step 2C/Q, so rounding <= 2 * step / 2 = step.
    step = 2 * 8.0 / QUANTIZATION_RANGE
    bound = aggregation_error_bound([100, 100], 100, 8.0, peak=0.0)
    assert bound == pytest.approx(step)
    # Clients ten times smaller than max_weight: ten times coarser.
    assert aggregation_error_bound([10, 10], 100, 8.0, peak=0.0) == pytest.approx(10 * step)


@pytest.mark.parametrize(
    "federated, message",
    [
        ({"secure_aggregation": {"shares": 3, "threshold": 3}}, "threshold: expected less than shares (3)"),
        ({"secure_aggregation": {"shares": 5, "threshold": 2}}, "shares: expected at most the 3 clients sampled per round"),
        ({"secure_aggregation": SECURE, "compression": "int8"}, "federated.compression: SecAgg+ masks plain float weights"),
    ],
)
def test_spec_checks_name_the_field(federated, message):
    spec = parse_dataclass(Spec, spec_dict(**federated))
    with pytest.raises(MCUForgeError, match=re.escape(message)):
        check_secure(spec, CLIENTS)


@pytest.mark.slow
def test_clients_refusing_a_too_small_clipping_range_say_so_in_the_stage_error():
    """SecAgg+'s workflow drops the clients' failed replies; the stage still names their refusal and its fix."""
    root = Path(tempfile.mkdtemp(prefix="mf", dir="/tmp")) / "build"  # short Ray socket paths, as secure_run
    root.mkdir()
    spec = root / "fedsecure.yaml"
    federated = {"secure_aggregation": {**SECURE, "clipping_range": 0.05}, "rounds": 1, "dropout": 0.0}
    spec.write_text(yaml.safe_dump(spec_dict(**federated)))
    try:
        ran = subprocess.run(
            [str(Path(sys.executable).parent / "mcuforge"), "federate", str(spec), "--root", str(root)],
            capture_output=True, text=True, cwd=REPO, timeout=600,
        )
    finally:
        shutil.rmtree(root.parent, ignore_errors=True)
    assert ran.returncode == 2, ran.stderr[-2000:]
    [error] = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert "exceeds federated.secure_aggregation.clipping_range=0.05: raise clipping_range above it" in error
    assert "lower dropout" not in error


def test_a_clients_refusal_goes_back_as_its_failure_reply_whose_reason_the_server_records():
    """The outermost client mod (the same in the simulation and on a SuperNode) turns our own refusal into a
    failure reply whose reason is its one line; Flower's workflow hands that reply's error to the strategy,
    whose round record keeps the line as is. Any other exception is left to Flower."""
    import time

    from flwr.common import Message, Metadata, RecordDict

    from mcuforge.train.federated.secure import client_mods
    from mcuforge.train.federated.strategy import failure_reason

    outermost = client_mods(parse_dataclass(Spec, spec_dict(secure_aggregation=SECURE)))[0]
    message = Message(content=RecordDict(), metadata=Metadata(
        run_id=1, message_id="fit", src_node_id=0, dst_node_id=7, reply_to_message_id="", group_id="1",
        created_at=time.time(), ttl=60.0, message_type="train"))
    refusal = "a model update of magnitude 9.5 exceeds federated.secure_aggregation.clipping_range=8.0: raise clipping_range above it"

    def refusing(msg, context):
        raise MCUForgeError(refusal)

    def crashing(msg, context):
        raise RuntimeError("not ours")

    reply = outermost(message, None, refusing)
    assert reply.has_error() and reply.error.reason == refusal
    assert failure_reason(Exception(reply.error)) == refusal  # SecAggPlusWorkflow's failures are Exception(msg.error)
    with pytest.raises(RuntimeError, match="not ours"):
        outermost(message, None, crashing)
