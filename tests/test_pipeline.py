"""The main job end to end on a tiny digits spec: stages, reuse, and the report a person reads."""

import base64
import json
from html.parser import HTMLParser

import pytest

from mcuforge.html_report import SECTIONS, write_html_report
from mcuforge.pipeline import run_pipeline
from mcuforge.spec import parse_spec

TINY = {
    "name": "tiny-digits",
    "data": {"dataset": "digits"},
    "model": {"arch": "tiny_cnn", "width": 0.5},
    "train": {"epochs": 3, "batch_size": 64, "learning_rate": 0.003},
    "compress": {
        "steps": ["prune", "quantize"],
        "options": {"prune": {"sparsity": 0.5, "epochs": 1}, "quantize": {"mode": "qat", "epochs": 1}},
    },
}


class ReportParser(HTMLParser):
    """Collects section ids, their text, and the images inside each section."""

    def __init__(self):
        super().__init__()
        self.section = None
        self.text = {}
        self.images = {}

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.section = attrs["id"]
            self.text[self.section] = ""
            self.images[self.section] = []
        elif tag == "img" and self.section:
            self.images[self.section].append(attrs["src"])

    def handle_data(self, data):
        if self.section:
            self.text[self.section] += data


@pytest.mark.slow
def test_pipeline_runs_every_stage_reuses_them_and_reports(tmp_path):
    spec = parse_spec(TINY)
    first = run_pipeline(spec, tmp_path, vectors=4)
    assert [s.name for s in first.stages] == ["train", "compress", "deploy", "firmware", "accelerators"]
    assert not any(s.reused for s in first.stages)

    run = json.loads((tmp_path / "tiny-digits" / "firmware" / "qemu-m4" / "run.json").read_text())
    assert run["identical_to_tflm"] == run["vectors"] == 4
    assert run["size"]["flash_used"] <= run["size"]["flash_limit"]

    again = run_pipeline(spec, tmp_path, vectors=4)
    assert all(s.reused for s in again.stages)

    # The deploy section changed, so deploy reruns; but a QAT model carries its own
    # ranges, calibration size changes no byte of it, and content hashes let the
    # firmware and accelerator stages reuse their outputs.
    changed = parse_spec({**TINY, "deploy": {"representative_samples": 50}})
    third = run_pipeline(changed, tmp_path, vectors=4)
    assert [s.reused for s in third.stages] == [True, True, False, True, True]
    assert third.stages[2].digest == first.stages[2].digest

    page = write_html_report(changed, tmp_path).read_text()
    parser = ReportParser()
    parser.feed(page)
    assert list(parser.text) == [key for key, _ in SECTIONS]
    for key, text in parser.text.items():
        assert "Not run yet" not in text, key
    assert "prune" in parser.text["compression"] and "FULLY_CONNECTED" in parser.text["layers"]
    assert "4 of 4" in parser.text["firmware"]
    for key in ("training", "compression", "fit"):
        assert parser.images[key], f"no image in {key}"
        for src in parser.images[key]:
            assert base64.b64decode(src.split(",", 1)[1])[:8] == b"\x89PNG\r\n\x1a\n"
