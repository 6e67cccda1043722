"""Hibari speakers: a Kokoro-82M voice (af_heart, American female) distilled into a 7.9 MB model in a PyPI package.

`hibari-tts` (Apache-2.0, like the Kokoro weights it is distilled from) carries one voice,
its misaki lexicons and phonemizer inside the wheel; its other voices download on first
use, so only the bundled one is ever named here (`Hibari(model=...)` on the package's own
file: no download path can run). The model predicts a source-filter parameter track and a
small DSP vocoder turns it into audio, about a hundred times faster than real time.

Its phonemes come from its own American lexicon, or, for an accent, from an espeak-ng
English dialect mapped onto the same misaki symbols Kokoro uses (`kokoro.phonemes`).
The vocoder's noise is seeded per call, so a speaker repeats itself to the sample.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import kokoro
from mcuforge.train.datasets.voices import require

VOICE = "heart"
SAMPLE_RATE = 24000


@lru_cache(maxsize=None)
def _synthesizer():
    """The bundled voice, loaded once per process on one onnxruntime thread."""
    package = require("hibari")
    model = Path(package.__file__).parent / "assets" / package.voices.VOICES[VOICE]["file"]
    return package.Hibari(voice=VOICE, model=str(model), threads=1)


def phonemes(word: str, run, dialect: str | None) -> str:
    """The word in misaki symbols: the voice's own lexicon, or espeak-ng's `dialect` mapped like Kokoro's input."""
    if dialect:
        return kokoro.phonemes(word, run, dialect)
    return " ".join(_synthesizer().phonemize(word))


def speak(word: str, speed: float, seed: int, run, dialect: str | None = None) -> np.ndarray:
    """One word as float32 samples at SAMPLE_RATE."""
    spoken = phonemes(word, run, dialect)
    if not spoken:
        raise MCUForgeError(f"hibari has no phonemes for {word!r}")
    return _synthesizer().from_phonemes(spoken, speed, seed).astype(np.float32)
