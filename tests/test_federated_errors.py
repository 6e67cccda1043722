"""`mcuforge federate` on specs it cannot run: one `error:` line naming the problem and the fix, exit status 2,
before any simulation starts."""

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mcuforge.errors import MCUForgeError
from mcuforge.spec import parse_spec
from mcuforge.train.federated.run import offline_environment, with_federated

REPO = Path(__file__).resolve().parent.parent
MCUFORGE = str(Path(sys.executable).parent / "mcuforge")


def federate(tmp_path, spec: dict, root: Path):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(spec))
    return subprocess.run([MCUFORGE, "federate", str(path), "--root", str(root)], capture_output=True, text=True, cwd=REPO, timeout=300)


@pytest.mark.parametrize(
    "change, complaint",
    [
        ({"data": {"dataset": "vibration", "options": {"train_windows": 10, "val_windows": 10, "test_normal_windows": 10,
                                                         "test_faulty_windows": 10}},
          "model": {"arch": "autoencoder"}}, "federated training needs a classifier data set"),
        ({"federated": {"clients": 3, "min_clients": 4}}, "federated.min_clients: expected at most the 3 clients. Received: 4"),
    ],
)
def test_unrunnable_specs_fail_with_one_error_line(tmp_path, change, complaint):
    spec = {"name": "fedbad", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}, **change}
    ran = federate(tmp_path, spec, Path("/tmp") / "mfe")
    assert ran.returncode == 2, ran.stderr[-2000:]
    errors = [line for line in ran.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and complaint in errors[0], ran.stderr[-2000:]


def test_a_bad_federated_field_is_named():
    with pytest.raises(MCUForgeError, match=r"federated\.fraction: expected a value > 0\.0 and <= 1\.0\. Received: 0\.0"):
        parse_spec({"name": "fed", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}, "federated": {"fraction": 0.0}})


def test_a_build_root_too_long_for_rays_sockets_is_refused_with_the_fix(tmp_path):
    root = tmp_path / ("x" * 60)
    with pytest.raises(MCUForgeError, match="too long for Ray's socket paths.*pass a shorter --root"):
        offline_environment(root)
    short = offline_environment(Path("/tmp/mf"))
    assert short["FLWR_TELEMETRY_ENABLED"] == "0" and short["RAY_USAGE_STATS_ENABLED"] == "0"
    assert short["FLWR_HOME"].startswith("/tmp/mf/") and short["RAY_TMPDIR"].startswith("/tmp/mf/")


def test_a_spec_without_a_federated_section_federates_with_the_defaults():
    spec = parse_spec({"name": "plain", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}})
    assert spec.federated is None
    assert with_federated(spec).federated.rounds == 10
    declared = parse_spec({"name": "fed", "data": {"dataset": "digits"}, "model": {"arch": "tiny_cnn"}, "federated": {"rounds": 3}})
    assert with_federated(declared) is declared


def test_flower_telemetry_is_off_whichever_module_imports_flower_first():
    code = "import mcuforge.train.federated.strategy; from flwr.supercore import telemetry; print(telemetry.FLWR_TELEMETRY_ENABLED)"
    ran = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env={"PATH": "/usr/bin:/bin"})
    assert ran.stdout.split() == ["0"], ran.stderr[-2000:]


def test_flowers_errors_are_kept_off_the_terminal_during_the_rounds():
    """flwr_exit logs its reason at ERROR, then exits: the stage quotes the kept message in its own error."""
    import logging

    from mcuforge.train.federated.run import quiet_flower

    flower_log = logging.getLogger("flwr")
    before = list(flower_log.handlers)
    with quiet_flower() as kept:
        assert not any(h in flower_log.handlers for h in before) and not flower_log.propagate  # nothing reaches a terminal
        flower_log.info("round 3 started")
        flower_log.error("Exit Code: 300\nSimulation engine crashed")
    assert kept == ["Exit Code: 300 Simulation engine crashed"]
    assert flower_log.handlers == before and flower_log.propagate
