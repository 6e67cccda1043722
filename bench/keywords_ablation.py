"""Which synthetic-data factor makes the keyword model hear real people: an ablation, int8 through TFLM.

Runs on demand (it trains one model per row: an hour or more on two shared cores):

    nice .venv/bin/python bench/keywords_ablation.py [--spec specs/keywords.yaml] [--root build/ablation]
        [--speakers 150] [--repetitions 3] [--epochs 12] [--rows NAME ...] [--train-seeds 0 1 2]

Each row is the spec's recipe with one factor switched (the first row is the recipe
before issue 15; the consistency rows switch a train option, `consistency_weight`). Every model is trained on a reduced protocol (speakers, takes and
epochs given on the command line, no compression), quantized to int8 with 200
representative samples and scored by the TFLM host interpreter on:

- the real dev set (../shared/data/speech_commands_dev, 23 speaker ids): keywords recognized,
  other words rejected as `_unknown_`;
- `_silence_` clips of the synthetic test split recognized as a keyword (false alarms);
- the synthetic test split (speakers never heard in training): accuracy.

The own-voice row trains with the takes of half of the dev speakers (`real_train_dir`,
the halves chosen by a hash of the speaker id, blind to the clips) and is scored, like
the full recipe beside it, on the other half only: the one place the dev set is trained on.
One training moves real keyword recall by 2 to 4 of the 48 clips with its seed alone, so
`--train-seeds` trains each row once per seed (`train.seed`; the data and split stay the
spec's) and the table ends with each row's mean clip counts over the seeds run.
Writes <root>/keywords_ablation.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import time
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.artifacts import write_json_atomic
from mcuforge.config import to_dict
from mcuforge.spec import load_spec, parse_spec
from mcuforge.train.datasets.keywords import ESPEAK_ACCENTS

DEV_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands_dev"
# Each row: (name, what it changes, option overrides on top of the spec's data options).
ROWS = [
    ("before", "recipe before issue 15: espeak-ng/flite/festival, sox reverb, no microphone",
     {"natural_share": 0.3, "neural_share": 0.0, "reverb_probability": 0.4, "room_probability": 0.0,
      "microphone_probability": 0.0, "snr_db_min": 0.0, "snr_db_max": 30.0, "extra_unknown_takes": 0}),
    ("recipe", "the spec's recipe, every factor on", {}),
    ("no-piper", "without the Piper voice (its share to espeak-ng)", {"neural_share": 0.0}),
    ("piper-accents", "recipe with each Piper speaker reading one of espeak-ng's 8 English dialects' phonemes",
     {"neural_accents": ESPEAK_ACCENTS}),
    ("hibari", "recipe + 45 speakers of the Hibari voice (a female Kokoro-82M voice), from espeak-ng's share",
     {"engines": ["espeak-ng", "flite", "festival", "piper", "hibari"], "hibari_share": 0.15}),
    ("hibari-30", "recipe + 90 Hibari speakers (hibari_share 0.3), from espeak-ng's share",
     {"engines": ["espeak-ng", "flite", "festival", "piper", "hibari"], "hibari_share": 0.3}),
    ("hibari-accents", "hibari with the Piper and Hibari speakers reading espeak-ng's 8 English dialects",
     {"engines": ["espeak-ng", "flite", "festival", "piper", "hibari"], "hibari_share": 0.15,
      "neural_accents": ESPEAK_ACCENTS}),
    ("kokoro", "recipe + Kokoro-82M speakers (15 % of the speakers, from espeak-ng's share)",
     {"engines": ["espeak-ng", "flite", "festival", "piper", "kokoro"], "kokoro_share": 0.15}),
    ("no-room", "sox reverb (40 %) instead of simulated rooms", {"room_probability": 0.0, "reverb_probability": 0.4}),
    ("no-microphone", "without microphone/channel/ADC effects", {"microphone_probability": 0.0}),
    ("no-extra-unknown", "without the extra `_unknown_` takes of the training speakers", {"extra_unknown_takes": 0}),
    ("feature-masks", "recipe + SpecAugment-style time and band masks on half the training clips", {"feature_mask_share": 0.5}),
    ("logmel", "recipe with 40 log-mel energies per frame instead of 10 MFCCs", {"features": "logmel"}),
    ("mean-normalized", "recipe with each clip's mean of every MFCC subtracted (cepstral mean normalization)",
     {"feature_normalization": "mean"}),
    ("mean-variance-normalized", "recipe with each clip's MFCC columns scaled to zero mean and unit deviation",
     {"feature_normalization": "mean_variance"}),
    ("own-voice", "recipe + takes of half the dev speakers (scored on the other half)", {}),
    ("consistency", "recipe + a loss pulling the predictions for two takes of one speaker's word together (λ = 1)", {}),
    ("consistency-3", "consistency with λ = 3 (AugMix's Jensen-Shannon weight 12 in symmetric-KL terms)", {}),
    ("consistency-word", "consistency (λ = 1) between two takes of one word by any two speakers",
     {"consistency_views": "word"}),
]
# Rows that change the train section too: name -> train overrides.
TRAIN_OVERRIDES = {
    "consistency": {"consistency_weight": 1.0},
    "consistency-3": {"consistency_weight": 3.0},
    "consistency-word": {"consistency_weight": 1.0},
}


def dev_halves(dev_dir: Path, work: Path) -> tuple[Path, Path]:
    """Two Speech Commands folders of symlinks splitting the dev speakers by a hash of their id."""
    halves = work / "dev-train-half", work / "dev-eval-half"
    for path in sorted(dev_dir.glob("*/*.wav")):
        speaker = path.name.split("_nohash_")[0]
        half = halves[int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 2]
        link = half / path.parent.name / path.name
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            link.symlink_to(path)
    return halves


def tflm_predictions(model_path: Path, x: np.ndarray) -> np.ndarray:
    from mcuforge.deploy.tflite_model import read_tflite
    from mcuforge.deploy.tflm import Emulator, prepare_input

    data = model_path.read_bytes()
    emulator = Emulator(read_tflite(model_path), data)
    raw = emulator.run(prepare_input(x, emulator.inputs[0], "ablation"))[0]
    return raw.reshape(len(x), -1).argmax(1)


def real_scores(predicted: np.ndarray, labels: np.ndarray) -> dict:
    """Keyword clips recognized (labels >= 2) and other-word clips rejected as _unknown_ (label 1)."""
    keyword, other = labels >= 2, labels == 1
    return {
        "keywords": float(np.mean(predicted[keyword] == labels[keyword])),
        "unknown_rejected": float(np.mean(predicted[other] == 1)),
        "keyword_clips": int(keyword.sum()),
        "other_clips": int(other.sum()),
    }


def run_row(base: dict, name: str, overrides: dict, train_seed: int, args, halves: tuple[Path, Path]) -> dict:
    from mcuforge.deploy.convert import convert
    from mcuforge.layout import INT8_MODEL_FILE
    from mcuforge.train.datasets import parse_options
    from mcuforge.train.datasets.keywords import clip_features, to_float
    from mcuforge.train.datasets.wav_folder import read_speech_commands
    from mcuforge.train.trainer import load_dataset, train

    data = {**base["data"]["options"], **overrides, "speakers": args.speakers, "repetitions": args.repetitions,
            "real_eval_dir": None}
    if name == "own-voice":
        data["real_train_dir"] = str(halves[0])
    spec = parse_spec({**base, "name": f"kws-ablation-{name}-seed{train_seed}", "data": {**base["data"], "options": data},
                       "train": {**base["train"], **TRAIN_OVERRIDES.get(name, {}), "epochs": args.epochs, "seed": train_seed},
                       "compress": {"steps": []}})
    started = time.perf_counter()
    dataset = load_dataset(spec)
    synthesis_seconds = time.perf_counter() - started
    layout = spec.layout(args.root)
    train(spec, layout.train)
    convert(spec, args.root)
    model_path = layout.deploy / INT8_MODEL_FILE
    options = parse_options("keywords", data)
    row = {"name": name, "train_seed": train_seed, "options": overrides, "train_options": TRAIN_OVERRIDES.get(name, {}), "synthesis_seconds": round(synthesis_seconds, 1),
           "total_seconds": round(time.perf_counter() - started, 1), "train_clips": len(dataset.y_train)}
    test_predicted = tflm_predictions(model_path, dataset.x_test)
    silence = dataset.y_test == 0
    row["synthetic_test"] = float(np.mean(test_predicted == dataset.y_test))
    row["silence_false_alarms"] = float(np.mean(test_predicted[silence] >= 2))
    for key, folder in (("dev", DEV_DIR), ("dev_eval_half", halves[1])):
        recordings = read_speech_commands(folder, options.class_names, key)
        x = to_float(clip_features(recordings.clips, options))
        row[key] = real_scores(tflm_predictions(model_path, x), recordings.labels)
    return row


def table(rows: list[dict], args) -> str:
    lines = [
        f"Protocol: {args.speakers} speakers x {args.repetitions} takes per class, {args.epochs} epochs, no compression, "
        "int8 post-training quantization, TFLM host interpreter. Dev = ../shared/data/speech_commands_dev "
        "(48 keyword clips, 108 other words, 23 speaker ids); half = the dev speakers not used by own-voice.",
        "",
        "| row | train seed | what | dev keywords | dev unknown rejected | half keywords | half unknown rejected | silence false alarms | synthetic test | minutes |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    what = {name: description for name, description, _ in ROWS}
    for row in rows:
        dev, half = row["dev"], row["dev_eval_half"]
        lines.append(
            f"| {row['name']} | {row['train_seed']} | {what[row['name']]} | {dev['keywords']:.1%} | {dev['unknown_rejected']:.1%} | "
            f"{half['keywords']:.1%} | {half['unknown_rejected']:.1%} | {row['silence_false_alarms']:.1%} | {row['synthetic_test']:.1%} | "
            f"{row['total_seconds'] / 60:.1f} |"
        )
    lines += ["", "Mean over the train seeds run (clips):", "",
              "| row | seeds | dev keywords | dev other words rejected | synthetic test |", "|---|---|---|---|---|"]
    for name in dict.fromkeys(row["name"] for row in rows):
        runs = [row for row in rows if row["name"] == name]
        keyword = [round(r["dev"]["keywords"] * r["dev"]["keyword_clips"]) for r in runs]
        rejected = [round(r["dev"]["unknown_rejected"] * r["dev"]["other_clips"]) for r in runs]
        lines.append(
            f"| {name} | {', '.join(str(r['train_seed']) for r in runs)} | {np.mean(keyword):.1f} / {runs[0]['dev']['keyword_clips']} "
            f"({', '.join(map(str, keyword))}) | {np.mean(rejected):.1f} / {runs[0]['dev']['other_clips']} ({', '.join(map(str, rejected))}) | "
            f"{np.mean([r['synthetic_test'] for r in runs]):.1%} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--root", type=Path, default=Path("build/ablation"))
    parser.add_argument("--speakers", type=int, default=150)
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--rows", nargs="*", default=[name for name, _, _ in ROWS])
    parser.add_argument("--train-seeds", type=int, nargs="+", default=[0])
    args = parser.parse_args()
    base = to_dict(load_spec(args.spec))
    halves = dev_halves(DEV_DIR, args.root)
    results_path = args.root / "keywords_ablation.json"
    rows = json.loads(results_path.read_text()) if results_path.is_file() else []
    for train_seed in args.train_seeds:
        for name, _, overrides in ROWS:
            if name in args.rows:
                row = run_row(base, name, overrides, train_seed, args, halves)
                rows = [r for r in rows if (r["name"], r["train_seed"]) != (name, train_seed)] + [row]
                write_json_atomic(results_path, rows)
                print(table(rows, args), flush=True)


if __name__ == "__main__":
    main()
