"""The main job end to end on a tiny digits spec: stages, reuse, and the report a person reads."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge.html_report import SECTIONS, write_html_report
from mcuforge.pipeline import STAGES, Stage, run_pipeline
from mcuforge.results import CompressResult, DeployResult, FirmwareResult, TrainResult
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
    deployed = first.stages[2].result
    assert isinstance(deployed, DeployResult)
    assert deployed.source_model == str(tmp_path / "tiny-digits" / "compress" / "model.h5")  # handed over, not guessed

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

    # Figures on the page are the ones in the typed results, read back from disk independently.
    base = tmp_path / "tiny-digits"
    trained = TrainResult.load(base / "train")
    assert f"{trained.metrics['parameters']:,}" in parser.text["training"]
    assert f"{trained.metrics['test']['accuracy']:.4f}" in parser.text["training"]
    compressed = CompressResult.load(base / "compress")
    for row in compressed.rows:
        assert f"{row.metric:.4f}" in parser.text["compression"] and f"{row.model_bytes:,}" in parser.text["compression"]
    fw = FirmwareResult.load(base / "firmware" / "qemu-m4")
    assert f"{fw.size.text:,}" in parser.text["firmware"] and f"{int(sum(fw.cycles) / len(fw.cycles)):,}" in parser.text["firmware"]
    evaluation = json.loads((base / "deploy" / "evaluation.json").read_text())
    assert f"{evaluation['tflm']:.4f}" in parser.text["agreement"]


@pytest.mark.parametrize(
    "change, message",
    [
        ({"data": {"dataset": "digits", "options": {"noise": 1}}}, r"^data\.options\.noise: unknown key"),
        ({"model": {"arch": "lenet"}}, r"^model\.arch: expected one of .*Received: 'lenet'$"),
        ({"compress": {"steps": ["prune", "distill"]}}, r"^compress\.steps: distill after prune cannot work"),
    ],
)
def test_a_bad_stage_option_stops_the_pipeline_before_any_stage_runs(tmp_path, change, message):
    spec = parse_spec({**TINY, **change})
    with pytest.raises(MCUForgeError, match=message):
        run_pipeline(spec, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_report_before_any_stage_ran_says_so(tmp_path):
    page = write_html_report(parse_spec(TINY), tmp_path).read_text()
    parser = ReportParser()
    parser.feed(page)
    not_run = [key for key, text in parser.text.items() if "Not run yet" in text]
    assert not_run == ["training", "compression", "layers", "fit", "agreement", "firmware", "accelerators"]
    assert "tiny-digits" in parser.text["spec"] and "360" in parser.text["data"]  # from the spec and the data set


def _digits_int8_model(path):
    """A small untrained conv model on the digits input, converted to int8 with a seeded calibration."""
    import tf_keras as keras

    from mcuforge.deploy.convert import convert_model

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3, activation="relu"), keras.layers.Flatten(), keras.layers.Dense(10)]
    )
    path.write_bytes(convert_model(model, np.random.default_rng(0).uniform(0, 1, (20, 8, 8, 1)).astype(np.float32)))


def _with_small_deploy():
    """The pipeline's firmware stage after a deploy stage that writes a small int8 model."""

    def deploy(run, directory):
        _digits_int8_model(directory / DeployResult.model)
        return DeployResult(source_model="none")

    firmware = next(stage for stage in STAGES if stage.name == "firmware")
    return (Stage("deploy", DeployResult, lambda run: run.layout.deploy, lambda run: {}, deploy), firmware)


@pytest.mark.slow
def test_firmware_gate_fails_on_one_wrong_byte(tmp_path, monkeypatch):
    from mcuforge.firmware import qemu

    spec = parse_spec(TINY)
    stages = _with_small_deploy()
    good = run_pipeline(spec, tmp_path, vectors=3, stages=stages)
    assert good.stages[1].result.identical_to_tflm == good.stages[1].result.vectors == 3

    real_run = qemu.run_qemu

    def one_byte_off(image, *args, **kwargs):
        ran = real_run(image, *args, **kwargs)
        ran.outputs[2][0] = ran.outputs[2][0].copy()
        ran.outputs[2][0].reshape(-1)[7] ^= 1
        return ran

    monkeypatch.setattr(qemu, "run_qemu", one_byte_off)
    stamp_before = (tmp_path / "tiny-digits" / "firmware" / "qemu-m4" / ".mcuforge-stage.json").read_bytes()
    with pytest.raises(MCUForgeError, match=r"disagrees with TFLM on 1 of 4 vectors \(vector 2: output byte 7 is -?\d+, TFLM gives -?\d+\)"):
        run_pipeline(spec, tmp_path, vectors=4, stages=stages)
    assert (tmp_path / "tiny-digits" / "firmware" / "qemu-m4" / ".mcuforge-stage.json").read_bytes() == stamp_before


def test_firmware_mismatches_name_vector_and_byte():
    from mcuforge.pipeline import firmware_mismatches

    expected = np.array([[1, 2, 3], [4, 5, 6]], np.int8)
    assert firmware_mismatches([expected[0], expected[1]], expected) == []
    assert firmware_mismatches([expected[0], np.array([4, -128, 6], np.int8)], expected) == ["vector 1: output byte 1 is -128, TFLM gives 5"]
    assert firmware_mismatches([expected[0]], expected) == ["the firmware reported 1 outputs for 2 vectors"]
    # int8 compared wide: 127 and -128 differ by 255, not by a wrapped 1
    assert firmware_mismatches([np.array([127], np.int8)], np.array([[-128]], np.int8)) == ["vector 0: output byte 0 is 127, TFLM gives -128"]


def test_deploy_stage_converts_the_model_handed_over_not_a_newer_stale_one(tmp_path):
    """A spec without compress steps deploys the trained model though an older run left a newer compress/model.h5."""
    import tf_keras as keras

    from mcuforge.train.trainer import save_model

    spec = parse_spec({**TINY, "compress": {"steps": []}})
    layout = spec.layout(tmp_path)

    def train(run, directory):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
        save_model(model, directory / "model.h5")
        return TrainResult({"task": "classification", "arch": "dense"})

    layout.compress.mkdir(parents=True)
    (layout.compress / "model.h5").write_bytes(b"a stale compress output: converting it would fail")
    deploy = next(stage for stage in STAGES if stage.name == "deploy")
    result = run_pipeline(spec, tmp_path, stages=(Stage("train", TrainResult, lambda run: run.layout.train, lambda run: {}, train), deploy))
    assert [s.name for s in result.stages] == ["train", "deploy"]
    assert result.stages[1].result.source_model == str(layout.train / "model.h5")
    assert json.loads((layout.deploy / "convert.json").read_text())["source_model"] == str(layout.train / "model.h5")
