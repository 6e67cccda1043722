"""Keyword-spotting demo: a sentence spoken by a test-split voice is transcribed in order by the device.

Oracles: the host build of the feature extractor that produced the training
features (mcuforge.features.extract) for the device's frames; the
TFLM host interpreter for every inference the device made; the words we had
espeak-ng say, for the transcript.
"""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from mcuforge.firmware import demos

SPECS = demos.FIRMWARE_DIR.parent / "specs"
WORDS = ["yes", "no", "up"]
# A small keywords variant: three keywords, espeak-ng voices only, few speakers.
TINY = {
    "words": WORDS,
    "unknown_words": ["bed", "cat", "dog", "house", "wow", "tree"],
    "engines": ["espeak-ng"],
    "speakers": 80,
    "repetitions": 4,
    "test_share": 0.1,
    "val_share": 0.1,
    "extra_unknown_takes": 0,  # the spec's extra other words would only lengthen this test's synthesis
}


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    from mcuforge.deploy.convert import convert_model, representative_sample
    from mcuforge.spec import parse_spec
    from mcuforge.train import trainer
    from mcuforge.train.datasets import keywords

    with pytest.MonkeyPatch.context() as patch:  # module-scoped: the autouse cache isolation is not set up yet
        patch.setenv("MCUFORGE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))
        data = yaml.safe_load((SPECS / "keywords.yaml").read_text())
        data["data"]["options"].update(TINY)
        data["model"] = {"arch": "tiny_cnn", "width": 1.0}
        data["train"].update(epochs=30, batch_size=32)
        spec = parse_spec(data)
        dataset = trainer.load_dataset(spec)
        model = trainer.build_model(spec, dataset)
        trainer.fit(model, spec, dataset)
        path = tmp_path_factory.mktemp("kws") / "model_int8.tflite"
        path.write_bytes(convert_model(model, representative_sample(dataset.x_train, 100, seed=0)))
        options = demos.spec_options(spec, "keywords")
        test_speakers = keywords.speaker_catalog(options, spec.data.seed)["test"]
        return path, options, test_speakers


def _window_outputs_by_tflm(path, frames: np.ndarray, last_frames: list[int], normalization: str) -> list[np.ndarray]:
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator, quantize
    from mcuforge import features

    emulator = Emulator(read_tflite(path), path.read_bytes())
    tensor = emulator.inputs[0]
    count = int(np.prod(tensor.shape)) // frames.shape[1]
    outputs = []
    for last in last_frames:
        window = features.normalize(frames[last - count + 1 : last + 1], normalization).astype(np.float32) * np.float32(features.SCALE)
        outputs.append(emulator.invoke(quantize(window, tensor).reshape(tensor.shape))[0].reshape(-1))
    return outputs


@pytest.mark.slow
def test_spoken_sequence_is_transcribed_in_order(tiny_model, tmp_path):
    from mcuforge import features

    path, options, test_speakers = tiny_model
    # Measured with this fixture's model, "yes no up", "up no yes" and "no up yes" by the 8 test speakers
    # are transcribed exactly in 19 of 24 cases; test speaker 4 (en-gb-x-gbclan+grandpa) gets all three right.
    speaker = test_speakers[4]
    assert speaker.engine == "espeak-ng"
    audio = demos.say(" ".join(WORDS), voice=speaker.voice, pitch=speaker.pitch, speed=speaker.speed)
    result = demos.run_kws(
        path, audio, options.class_names, options.features, options.num_mfcc, options.feature_normalization, print_frames=True, out_dir=tmp_path
    )

    # the device's features, frame by frame, equal the extractor the model was trained with
    expected_frames = features.extract(audio, options.features, options.num_mfcc)
    np.testing.assert_array_equal(result.frames, expected_frames)
    # every inference the device made equals TFLM's on the same window
    lasts = [last for last, _, _ in result.inferences]
    assert lasts == list(range(48, len(expected_frames), demos.KWS_HOP_FRAMES))
    for (last, _, got), want in zip(result.inferences, _window_outputs_by_tflm(path, expected_frames, lasts, options.feature_normalization)):
        np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32), err_msg=f"window ending at frame {last}")
    # the words, in the order spoken, at increasing times inside the audio
    assert result.sequence == WORDS, result.transcript()
    times = [t for _, t, _ in result.words]
    assert times == sorted(times) and 0.5 < times[0] and times[-1] <= result.audio_seconds
    assert all(score >= demos.KWS_THRESHOLD for _, _, score in result.words)
    assert "yes" in result.transcript().splitlines()[0]


@pytest.mark.slow
def test_device_normalizes_each_window_as_the_model_was_trained(tiny_model, tmp_path):
    """feature_normalization: the device's inferences equal TFLM's on each window less its column means."""
    from mcuforge import features

    path, options, _ = tiny_model
    audio = demos.say("yes")[:24000]  # 1.5 s: 74 frames, six windows
    result = demos.run_kws(path, audio, options.class_names, options.features, options.num_mfcc, "mean", out_dir=tmp_path)
    frames = features.extract(audio, options.features, options.num_mfcc)
    lasts = [last for last, _, _ in result.inferences]
    assert lasts == list(range(48, len(frames), demos.KWS_HOP_FRAMES)) and len(lasts) == 6
    normalized = _window_outputs_by_tflm(path, frames, lasts, "mean")
    for (last, _, got), want in zip(result.inferences, normalized):
        np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32), err_msg=f"window ending at frame {last}")
    as_computed = _window_outputs_by_tflm(path, frames, lasts, "none")
    assert any(not np.array_equal(a, b) for a, b in zip(normalized, as_computed))  # the normalization reached the model


@pytest.mark.slow
def test_device_streams_at_the_frame_stride_the_model_was_trained_with(tmp_path):
    """frame_stride_ms 40: the device's frames are the extractor's at 640 samples, its window the model's 25 frames, and
    every inference TFLM's on that window (an untrained model: the stride, not the words, is under test)."""
    import tf_keras

    from mcuforge import features
    from mcuforge.deploy.convert import convert_model, representative_sample

    stride = features.stride_samples(40)
    audio = demos.say("yes")[:24000]  # 1.5 s: 1 + (24000 - 480) // 640 = 37 frames, windows ending at frames 24, 29, 34
    frames = features.extract(audio, "mfcc", 10, stride=stride)
    tf_keras.utils.set_random_seed(0)
    model = tf_keras.Sequential([tf_keras.Input((25, 10, 1)), tf_keras.layers.Conv2D(4, 3, strides=2, activation="relu"),
                                 tf_keras.layers.Flatten(), tf_keras.layers.Dense(3, activation="softmax")])
    windows = np.stack([frames[i : i + 25] for i in range(len(frames) - 24)]).astype(np.float32)[..., None] * np.float32(features.SCALE)
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(convert_model(model, representative_sample(windows, 13, seed=0)))
    result = demos.run_kws(path, audio, ["_silence_", "_unknown_", "yes"], "mfcc", 10, stride=stride, print_frames=True, out_dir=tmp_path)
    np.testing.assert_array_equal(result.frames, frames)
    lasts = [last for last, _, _ in result.inferences]
    assert lasts == [24, 29, 34] and [t for _, t, _ in result.inferences] == [(last * 640 + 480) // 16 / 1000 for last in lasts]
    for (last, _, got), want in zip(result.inferences, _window_outputs_by_tflm(path, frames, lasts, "none")):
        np.testing.assert_array_equal(got.astype(np.int32), want.astype(np.int32), err_msg=f"window ending at frame {last}")


def test_cli_needs_exactly_one_audio_source():
    from mcuforge.cli import app

    outcome = CliRunner().invoke(app, ["demo", "kws", "--wav", "a.wav", "--say", "yes"])
    assert outcome.exit_code != 0
    assert "exactly one of --wav FILE or --say" in str(outcome.exception)


def test_say_leaves_gaps_between_words():
    audio = demos.say("yes no", voice="en-us")
    loud = np.abs(audio.astype(np.int32)) > 500
    assert audio.dtype == np.int16 and not loud[:8000].any() and not loud[-8000:].any()  # half a second of silence around
    active = np.flatnonzero(loud)
    gaps = np.diff(active)
    assert gaps.max() >= 0.4 * 16000  # the two words stand apart (espeak-ng's -g gap)
