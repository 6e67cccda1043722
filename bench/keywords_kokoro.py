"""Do Kokoro speakers say the keywords? A model that never heard Kokoro scores their takes; and what a word costs.

    nice .venv/bin/python bench/keywords_kokoro.py --model build/ablation/kws-ablation-recipe/deploy/model_int8.tflite
        [--spec specs/keywords.yaml] [--speakers 300] [--repetitions 4] [--kokoro-share 0.15] [--listen 20]

Listening is not possible here, so the check is a listener: an int8 keywords model
trained without Kokoro (e.g. the ablation's `recipe` row), run by the TFLM host
interpreter on the takes of the first `--listen` Kokoro speakers of the catalog that
the spec's data with `--kokoro-share` draws (the ablation's `kokoro` row: their clips
are cached once it ran), augmented as in training (rooms, noise, microphones).
Prints the share of keyword takes it recognizes (chance is 1 in 12) and per word,
then times Kokoro alone on the keywords (wall clock and CPU, one thread, the
machine's load included).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import mcuforge  # noqa: F401  (sets the Keras 2 environment before TensorFlow loads)
from mcuforge.config import to_dict
from mcuforge.spec import load_spec


def main() -> None:
    from keywords_ablation import tflm_predictions

    from mcuforge.artifacts import data_cache_dir
    from mcuforge.train.datasets import kokoro, parse_options
    from mcuforge.train.datasets.keywords import ENGINES, _run, clip_features, speaker_catalog, speaker_clips, to_float

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an int8 keywords .tflite trained without Kokoro")
    parser.add_argument("--spec", default="specs/keywords.yaml")
    parser.add_argument("--speakers", type=int, default=300)
    parser.add_argument("--repetitions", type=int, default=4)
    parser.add_argument("--kokoro-share", type=float, default=0.15)
    parser.add_argument("--listen", type=int, default=20, help="Kokoro speakers whose takes the model scores")
    args = parser.parse_args()
    spec = to_dict(load_spec(args.spec))
    options = parse_options("keywords", {
        **spec["data"]["options"], "speakers": args.speakers, "repetitions": args.repetitions,
        "engines": ENGINES, "kokoro_share": args.kokoro_share,
    })
    seed = spec["data"]["seed"]
    catalog = speaker_catalog(options, seed)
    speakers = [s for split in ("test", "val", "train") for s in catalog[split] if s.engine == "kokoro"][: args.listen]
    takes = [speaker_clips(speaker, options, seed, data_cache_dir()) for speaker in speakers]
    clips, labels = np.concatenate([t[0] for t in takes]), np.concatenate([t[1] for t in takes])
    predicted = tflm_predictions(args.model, to_float(clip_features(clips, options)))
    keyword = labels >= 2
    print(f"{len(speakers)} Kokoro speakers, {len(labels)} takes, {keyword.sum()} of keywords")
    print(f"keyword takes recognized: {np.mean(predicted[keyword] == labels[keyword]):.1%} "
          f"(other words rejected: {np.mean(predicted[labels == 1] == 1):.1%}, silence: {np.mean(predicted[labels == 0] == 0):.1%})")
    print("  " + ", ".join(f"{word} {np.sum(predicted[labels == i] == i)}/{np.sum(labels == i)}" for i, word in enumerate(options.words, 2)))
    kokoro.speak("yes", np.full(len(kokoro.STYLES), 1 / len(kokoro.STYLES)), 1.0, _run)  # the model loaded before timing
    wall, cpu = time.perf_counter(), time.process_time()
    for word in options.words:
        kokoro.speak(word, np.full(len(kokoro.STYLES), 1 / len(kokoro.STYLES)), 1.0, _run)
    print(f"Kokoro per word: {(time.perf_counter() - wall) / len(options.words):.2f} s wall, "
          f"{(time.process_time() - cpu) / len(options.words):.2f} s CPU")


if __name__ == "__main__":
    main()
