"""Stage reuse: same inputs reuse, changed inputs or tampered outputs recompute."""

from mcuforge.artifacts import atomic_output_dir
from mcuforge.stages import digest_dir, run_stage


def make_action(calls, text):
    def action(directory):
        calls.append(text)
        with atomic_output_dir(directory) as staging:
            (staging / "out.txt").write_text(text)

    return action


def test_reuse_and_invalidation(tmp_path):
    calls = []
    out = tmp_path / "stage"
    first = run_stage("s", out, {"spec": {"epochs": 1}}, make_action(calls, "a"))
    again = run_stage("s", out, {"spec": {"epochs": 1}}, make_action(calls, "a"))
    assert (first.reused, again.reused) == (False, True) and calls == ["a"]
    assert again.digest == first.digest == digest_dir(out)

    changed = run_stage("s", out, {"spec": {"epochs": 2}}, make_action(calls, "b"))
    assert not changed.reused and calls == ["a", "b"] and changed.digest != first.digest

    (out / "out.txt").write_text("edited by hand")
    repaired = run_stage("s", out, {"spec": {"epochs": 2}}, make_action(calls, "b"))
    assert not repaired.reused and (out / "out.txt").read_text() == "b"


def test_digest_covers_names_and_bytes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_bytes(b"1")
    before = digest_dir(tmp_path / "a")
    (tmp_path / "a" / "x").rename(tmp_path / "a" / "y")
    assert digest_dir(tmp_path / "a") != before
