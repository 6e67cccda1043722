"""bench/federated_isolation.py: a benchmark row in its own process comes back with its result, or with why it has none."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from federated_isolation import RowFailed, in_own_process  # noqa: E402


def die_like_ray(ray_temp: Path, how: str) -> None:
    """Write a Ray session log for this process as Ray's driver would, then end without a result."""
    pid = os.getpid()
    logs = ray_temp / f"session_2026-11-28_20-17-10_189721_{pid}" / "logs"
    logs.mkdir(parents=True)
    (logs / f"python-core-driver-01000000ffff_{pid}.log").write_text(
        "[2026-11-28 20:17:36,123 I 13350 13350] core_worker.cc:100: connected\n"
        "[2026-11-28 20:18:22,310 F 13350 16512] raylet_client.cc:88: Raylet is terminated\n"
    )
    if how == "kill":
        os.kill(pid, signal.SIGKILL)
    os._exit(1)


def test_a_row_returns_its_result(tmp_path):
    assert in_own_process(pow, 2, 10, ray_temp=tmp_path) == 1024


@pytest.mark.parametrize("function, args, said", [
    (int, ("x",), "raised ValueError: invalid literal for int() with base 10: 'x'"),
    (sys.exit, (3,), "raised SystemExit(3) from inside the row"),
])
def test_a_row_that_raises_says_what(tmp_path, function, args, said):
    with pytest.raises(RowFailed, match=r"\(pid \d+\) " + said.replace("(", r"\(").replace(")", r"\)")):
        in_own_process(function, *args, ray_temp=tmp_path)


@pytest.mark.parametrize("how, said", [
    ("kill", "killed by SIGKILL (the kernel's out-of-memory killer"),
    ("exit", "exited with status 1 without a result or a Python exception"),
])
def test_a_row_whose_process_dies_says_how_and_quotes_rays_log(tmp_path, how, said):
    with pytest.raises(RowFailed) as failure:
        in_own_process(die_like_ray, tmp_path, how, ray_temp=tmp_path)
    message = str(failure.value)
    assert said in message
    assert "Raylet is terminated" in message and "connected" not in message  # error lines only
