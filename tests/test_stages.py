"""Stage reuse: same inputs reuse, changed inputs or tampered outputs recompute, a failing stage keeps the last good output."""

from dataclasses import dataclass
from typing import ClassVar

import pytest

from mcuforge.artifacts import atomic_output_dir
from mcuforge.errors import MCUForgeError
from mcuforge.results import Artifact
from mcuforge.stages import STAMP, digest_dir, run_stage


@dataclass(frozen=True)
class Note(Artifact):
    FILE: ClassVar[str] = "note.json"
    text: str


def make_action(calls, text):
    def action(directory):
        calls.append(text)
        (directory / "out.txt").write_text(text)
        return Note(text)

    return action


def failing_action(directory):
    (directory / "out.txt").write_text("half written")
    raise MCUForgeError("the stage broke")


def test_reuse_and_invalidation(tmp_path):
    calls = []
    out = tmp_path / "stage"
    first = run_stage("s", out, {"spec": {"epochs": 1}}, make_action(calls, "a"), Note)
    again = run_stage("s", out, {"spec": {"epochs": 1}}, make_action(calls, "a"), Note)
    assert (first.reused, again.reused) == (False, True) and calls == ["a"]
    assert again.digest == first.digest == digest_dir(out)
    assert first.result == again.result == Note("a")

    changed = run_stage("s", out, {"spec": {"epochs": 2}}, make_action(calls, "b"), Note)
    assert not changed.reused and calls == ["a", "b"] and changed.digest != first.digest

    (out / "out.txt").write_text("edited by hand")
    repaired = run_stage("s", out, {"spec": {"epochs": 2}}, make_action(calls, "b"), Note)
    assert not repaired.reused and (out / "out.txt").read_text() == "b"


def test_a_failing_stage_keeps_its_last_output_and_only_it_reruns(tmp_path):
    calls = []
    upstream, downstream = tmp_path / "up", tmp_path / "down"
    up = run_stage("up", upstream, {"spec": 1}, make_action(calls, "u1"), Note)
    down = run_stage("down", downstream, {"up": up.digest, "spec": 1}, make_action(calls, "d1"), Note)
    files_before = {p.name: p.read_bytes() for p in downstream.iterdir()}
    assert STAMP in files_before

    with pytest.raises(MCUForgeError, match="the stage broke"):
        run_stage("down", downstream, {"up": up.digest, "spec": 2}, failing_action, Note)
    assert {p.name: p.read_bytes() for p in downstream.iterdir()} == files_before  # output and stamp untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["down", "up"]  # no staging directory left behind

    calls.clear()
    up_again = run_stage("up", upstream, {"spec": 1}, make_action(calls, "u1"), Note)
    down_again = run_stage("down", downstream, {"up": up_again.digest, "spec": 2}, make_action(calls, "d2"), Note)
    assert up_again.reused and not down_again.reused and calls == ["d2"]
    assert down_again.result == Note("d2") and down.result == Note("d1")


def test_a_stage_failing_after_its_own_atomic_write_gets_its_previous_output_back(tmp_path):
    """The train and compress actions swap in their own output atomically; a failure after that still restores."""
    calls = []
    out = tmp_path / "stage"
    run_stage("s", out, {"spec": 1}, make_action(calls, "a"), Note)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def writes_then_fails(directory):
        with atomic_output_dir(directory) as staging:
            (staging / "out.txt").write_text("new")
        raise MCUForgeError("failed after writing")

    with pytest.raises(MCUForgeError, match="failed after writing"):
        run_stage("s", out, {"spec": 2}, writes_then_fails, Note)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["stage"]


def test_an_output_whose_result_no_longer_loads_is_recomputed(tmp_path):
    """A build written before a stage saved its result in this form: stamp and digest match, the result does not load."""
    import json

    calls = []
    out = tmp_path / "stage"
    run_stage("s", out, {"spec": 1}, make_action(calls, "a"), Note)
    (out / "note.json").unlink()
    stamp = json.loads((out / STAMP).read_text())
    (out / STAMP).write_text(json.dumps({**stamp, "output": digest_dir(out)}))
    again = run_stage("s", out, {"spec": 1}, make_action(calls, "a"), Note)
    assert not again.reused and calls == ["a", "a"] and again.result == Note("a")


def test_digest_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1")
    before = digest_dir(tmp_path / "a")
    (tmp_path / "a" / "x").rename(tmp_path / "a" / "y")
    assert digest_dir(tmp_path / "a") != before
