"""Why a keyword model trained on synthetic voices misses real people: dev-set curves and probes (float Keras).

Runs on demand (one training each, minutes on two cores):

    nice .venv/bin/python bench/keywords_gap.py --out build/gap/full.json [--spec specs/keywords.yaml]
        [--epochs 30] [--speaker-share 1.0] [--takes 4] [--without-engines espeak-ng] [--data '{"speakers": 150}']

Trains the spec's model on its data (or on a share of its training speakers, or on fewer
takes per speaker and class, or without some engines' speakers) and after every epoch
scores the real dev set (../shared/data/speech_commands_dev: keywords recognized, other
words rejected as `_unknown_`) and the synthetic test split. Epoch-to-epoch spread of the
dev figures shows how much one run's figure can be trusted. The trained model then hears
the dev clips changed in one way at a time, to test what separates them from the
synthetic clips: quieter (level), re-centred in their second (word position), and with
background noise added (clean versus noisy input). The dev set is only measured here,
never trained on. Writes the JSON given by --out and prints it.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import to_dict
from mcuforge.spec import load_spec, parse_spec

DEV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_dev"
GAINS_DB = (0, -6, -12, -18, -24)
ADDED_NOISE_SNR_DB = (40, 30, 20, 10)


def dev_scores(predicted: np.ndarray, labels: np.ndarray) -> dict:
    keyword, other = labels >= 2, labels == 1
    return {"keywords": float(np.mean(predicted[keyword] == labels[keyword])), "unknown_rejected": float(np.mean(predicted[other] == 1))}


def training_subset(dataset, options, seed: int, args):
    """The training samples of the kept speakers (a seeded share, minus excluded engines), first `takes` per class."""
    from mcuforge.train.datasets.keywords import speaker_catalog, train_speaker_ids

    speakers = speaker_catalog(options, seed)["train"]
    ids = train_speaker_ids(options, seed, len(dataset.y_train))
    kept = np.random.default_rng(1).permutation(len(speakers))[: round(len(speakers) * args.speaker_share)]
    kept = [i for i in kept if speakers[i].engine not in args.without_engines]
    take = np.zeros(len(ids), int)
    for speaker in np.unique(ids):
        for label in np.unique(dataset.y_train):
            where = np.flatnonzero((ids == speaker) & (dataset.y_train == label))
            take[where] = np.arange(len(where))
    mask = np.isin(ids, kept) & (take < args.takes)
    return replace(dataset, x_train=dataset.x_train[mask], y_train=dataset.y_train[mask]), len(kept)


def probes(model, clips: np.ndarray, labels: np.ndarray, options) -> dict:
    """Dev figures of the trained model on the dev clips made quieter, re-centred, or noisier."""
    from mcuforge.train.datasets.keywords import background_noise, clip_features, to_float

    def score(changed: np.ndarray) -> dict:
        pcm = np.clip(np.round(changed), -32768, 32767).astype(np.int16)
        return dev_scores(model.predict(to_float(clip_features(pcm, options)), verbose=0).argmax(1), labels)

    audio = clips.astype(np.float64)
    frame_power = (audio[:, : len(audio[0]) // 160 * 160].reshape(len(audio), -1, 160) ** 2).mean(axis=2)
    centroid = (frame_power * np.arange(frame_power.shape[1])).sum(axis=1) / frame_power.sum(axis=1) * 160
    rng = np.random.default_rng(0)
    noisy = {}
    for snr in ADDED_NOISE_SNR_DB:
        # Noise relative to the speech: the RMS of the frames within 20 dB of the loudest.
        speech_rms = [np.sqrt(p[p > p.max() * 0.01].mean()) for p in frame_power]
        noisy[snr] = score([a + background_noise(rng, len(a)) * s / 10 ** (snr / 20) for a, s in zip(audio, speech_rms)])
    return {
        "gain_db": {g: score(audio * 10 ** (g / 20)) for g in GAINS_DB},
        "centred": score(np.stack([np.roll(a, int(len(a) // 2 - c)) for a, c in zip(audio, centroid)])),
        "keyword_clips_off_centre_100ms": int(np.sum(np.abs(centroid - len(audio[0]) // 2)[labels >= 2] > 1600)),
        "added_noise_snr_db": noisy,
    }


def main() -> None:
    import tf_keras

    from mcuforge.train.datasets import parse_options
    from mcuforge.train.datasets.wav_folder import read_speech_commands
    from mcuforge.train.trainer import build_model, fit, load_dataset

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--speaker-share", type=float, default=1.0)
    parser.add_argument("--takes", type=int, default=100)
    parser.add_argument("--without-engines", nargs="*", default=[])
    parser.add_argument("--data", default="{}", help="JSON overrides of the spec's data options")
    args = parser.parse_args()
    base = to_dict(load_spec(args.spec))
    base["data"]["options"] = {**base["data"]["options"], **json.loads(args.data), "real_eval_dir": None}
    spec = parse_spec({**base, "train": {**base["train"], "epochs": args.epochs}})
    options = parse_options("keywords", spec.data.options)
    dataset, speakers = training_subset(load_dataset(spec), options, spec.data.seed, args)
    dev = read_speech_commands(DEV_DIR, options.class_names, "dev")
    from mcuforge.train.datasets.keywords import clip_features, to_float

    x_dev = to_float(clip_features(dev.clips, options))
    epochs = []

    class DevCurve(tf_keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            test = self.model.predict(dataset.x_test, verbose=0).argmax(1)
            epochs.append({"epoch": epoch + 1, **dev_scores(self.model.predict(x_dev, verbose=0).argmax(1), dev.labels),
                           "synthetic_test": float(np.mean(test == dataset.y_test))})

    model = build_model(spec, dataset)
    fit(model, spec, dataset, callbacks=(DevCurve(),))
    last_third = epochs[len(epochs) * 2 // 3 :]
    result = {
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "train_clips": len(dataset.y_train),
        "train_speakers": speakers,
        "final": epochs[-1],
        "last_third_range": {k: [min(e[k] for e in last_third), max(e[k] for e in last_third)] for k in ("keywords", "unknown_rejected")},
        "probes": probes(model, dev.clips, dev.labels, options),
        "epochs": epochs,
    }
    write_json_atomic(args.out, result)
    print(json.dumps({k: v for k, v in result.items() if k != "epochs"}, indent=1))


if __name__ == "__main__":
    main()
