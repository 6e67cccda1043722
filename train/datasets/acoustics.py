"""What happens to a word between the mouth and the device's ADC: room, microphone, converter.

Rooms are shoebox image-source simulations (pyroomacoustics): random size, reverberation
time (hence wall absorption) and source/microphone positions, so the direct-to-reverberant
ratio varies the way it does for a phone or a board on a desk. The microphone and channel
stage band-limits (cheap MEMS capsules roll off below a few hundred Hz, some chains above
a few kHz), tilts the response, sets the recording gain (sometimes clipping) and
quantizes to 16 bits like the device's ADC, over the chain's own
noise floor. All randomness comes from the caller's rng.
"""

from __future__ import annotations

import numpy as np

from mcuforge.train.datasets.voices import require

SAMPLE_RATE = 16000
ROOM_SIZE_M = ((3.0, 10.0), (2.5, 8.0), (2.4, 3.5))
RT60_S = (0.15, 0.8)
DISTANCE_M = (0.3, 3.0)
# Image-source order cap: later reflections are dense and nearly diffuse; capping keeps a
# room at tens of milliseconds of compute while the RT60 still shapes the early tail.
MAX_ORDER = 12


def room_impulse_response(rng: np.random.Generator) -> np.ndarray:
    """The impulse response from a talker to a microphone in a random room, peak-normalized to the direct path."""
    pra = require("pyroomacoustics")
    size = np.array([rng.uniform(low, high) for low, high in ROOM_SIZE_M])
    rt60 = rng.uniform(*RT60_S)
    try:
        absorption, order = pra.inverse_sabine(rt60, size)
    except ValueError:  # the room is too large for so short a reverberation: walls fully absorbing
        absorption, order = 0.99, 1
    room = pra.ShoeBox(size, fs=SAMPLE_RATE, materials=pra.Material(absorption), max_order=min(order, MAX_ORDER))
    margin = 0.3
    microphone = np.array([rng.uniform(margin, s - margin) for s in size[:2]] + [rng.uniform(0.7, 1.5)])
    for _ in range(20):  # a talker at a plausible distance, inside the room
        direction = rng.normal(size=3)
        direction[2] *= 0.2
        source = microphone + direction / np.linalg.norm(direction) * rng.uniform(*DISTANCE_M)
        if all(margin < source[i] < size[i] - margin for i in range(3)):
            break
    else:
        source = np.clip(source, margin, size - margin)
    room.add_source(source)
    room.add_microphone(microphone)
    room.compute_rir()
    rir = np.asarray(room.rir[0][0], np.float64)
    return rir / (np.abs(rir).max() or 1.0)


def reverberate(speech: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speech as heard in a random room, same length and level as the dry input."""
    from scipy.signal import fftconvolve

    wet = fftconvolve(speech, room_impulse_response(rng))[: len(speech)]
    peak = np.abs(wet).max()
    return wet * (np.abs(speech).max() / peak) if peak > 0 else wet


def microphone(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random capsule and channel: high-pass, optional low-pass, spectral tilt; float in, float out."""
    from scipy.signal import butter, sosfilt

    sections = [butter(2, rng.uniform(60, 400), "highpass", fs=SAMPLE_RATE, output="sos")]
    if rng.random() < 0.5:
        sections.append(butter(4, rng.uniform(3400, 7600), "lowpass", fs=SAMPLE_RATE, output="sos"))
    out = signal
    for sos in sections:
        out = sosfilt(sos, out)
    # Tilt: a first-order shelf around 1 kHz, from -6 to +6 dB at the top of the band.
    tilt_db = rng.uniform(-6, 6)
    bright = sosfilt(butter(1, 1000, "highpass", fs=SAMPLE_RATE, output="sos"), out)
    return out + (10 ** (tilt_db / 20) - 1) * bright


# Every capsule, preamplifier and converter hisses: white noise at this RMS level (dBFS) under
# every take, so no clip has the digital silence that no microphone records.
SELF_NOISE_DBFS = (-90.0, -60.0)


def self_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """n samples of the recording chain's own noise floor, at a random level in SELF_NOISE_DBFS."""
    return rng.normal(size=n) * 32767 * 10 ** (rng.uniform(*SELF_NOISE_DBFS) / 20)


CLIPPING_PROBABILITY = 0.1


def to_adc(signal: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """The 16-bit converter; a few takes get so much gain that their peaks clip (by up to 6 dB)."""
    if rng.random() < CLIPPING_PROBABILITY:
        overdrive_db = rng.uniform(0, 6)
        signal = signal * (32767 * 10 ** (overdrive_db / 20) / (np.abs(signal).max() or 1.0))
    return np.clip(np.round(signal), -32768, 32767).astype(np.int16)
