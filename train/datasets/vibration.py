"""Simulated vibration of a rotating machine, for predictive maintenance as anomaly detection.

A two-axis (radial, axial) int16 accelerometer on a bearing housing of a shaft
turning at a slowly varying speed. Normal machines show a residual imbalance
(1x), small 2x/3x harmonics, a structural resonance excited by broadband forces
and sensor noise, with every parameter drawn per machine. Faults add what the
physics of rotating machinery predicts:

- imbalance: a larger 1x radial component, growing with the square of speed;
- misalignment: strong 2x (and 1x) axial and 2x radial components;
- bearing defects: impacts at the bearing's characteristic frequency (BPFO for
  the outer race, BPFI for the inner race, twice BSF for a ball) that ring the
  housing resonance; inner-race impacts are amplitude-modulated by the shaft
  rotation and ball impacts by the cage (FTF), as the defect passes through the
  load zone.

Train and val hold normal windows only; test holds normal and faulty windows
(`y_test` 1 = faulty), so the metric is the ROC AUC of an anomaly score.

By default every window comes from a fresh machine of the population. With
`machines` set, every window comes from one machine of a fleet (`fleet`): each
machine runs in its own slice of the shaft-speed range under its own load, the
training windows in one block per machine (`train_machine_ids`), as federated
training needs them (one client per machine).

Features (`window_features`) are Welch-averaged log2 band powers per axis, in
integer arithmetic only (Q15 Hann window and DFT tables, int64 powers, a
piecewise-linear log2), so firmware can compute them bit for bit later.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import ANOMALY, Dataset

COUNTS_PER_G = 2000  # int16 sensor, +-16 g full scale
AXES = ("radial", "axial")
FAULTS = ("imbalance", "misalignment", "bearing_outer", "bearing_inner", "bearing_ball")
NOMINAL_SHAFT_HZ = 25.0  # speed at which the per-machine amplitudes below are specified
LOG2_FRACTION_BITS = 8  # features are log2(power) in Q8 ...
FEATURE_DIVISOR = 4096.0  # ... divided by 16 * 256, so they lie in about [0, 4)
Q15_ONE = 32767
WINDOWED_FRACTION_BITS = 4  # windowed samples keep 4 fractional bits, so rounding stays below the sensor's own
DFT_SHIFT = 17  # re, im = 4 x the DFT: re^2 + im^2 over 16 segments of 1024 full-scale samples stays below 2^63
_SPEED_WOBBLE_HZ = (0.1, 2.0)  # range of the frequencies of the shaft-speed fluctuation
_RESONANCE_HZ = (550.0, 850.0)  # range of the housing resonance of a normal machine


@dataclass(frozen=True)
class Bearing:
    """Rolling-element bearing geometry; the defaults are the SKF 6205 of the CWRU bearing rig."""

    balls: int = 9
    ball_diameter_mm: float = 7.94
    pitch_diameter_mm: float = 39.04
    contact_angle_deg: float = 0.0

    def frequencies(self, shaft_hz: float) -> dict[str, float]:
        """Cage (FTF), outer-race (BPFO), inner-race (BPFI) and ball-spin (BSF) frequencies in Hz."""
        ratio = self.ball_diameter_mm / self.pitch_diameter_mm * math.cos(math.radians(self.contact_angle_deg))
        return {
            "ftf": shaft_hz / 2 * (1 - ratio),
            "bpfo": self.balls / 2 * shaft_hz * (1 - ratio),
            "bpfi": self.balls / 2 * shaft_hz * (1 + ratio),
            "bsf": self.pitch_diameter_mm / (2 * self.ball_diameter_mm) * shaft_hz * (1 - ratio**2),
        }


BEARING = Bearing()


@dataclass(frozen=True)
class VibrationOptions:
    sample_rate_hz: int = spec_field(2048, min=512, max=32768, help="accelerometer sample rate")
    segment: int = spec_field(256, choices=(64, 128, 256, 512, 1024), help="DFT length (samples)")
    segments_per_window: int = spec_field(4, min=1, max=16, help="segments whose powers are averaged per window")
    bands: int = spec_field(16, choices=(4, 8, 16, 32, 64, 128, 256, 512), help="power bands per axis")
    shaft_hz_min: float = spec_field(20.0, min=1.0, max=500.0, help="slowest nominal shaft speed")
    shaft_hz_max: float = spec_field(30.0, min=1.0, max=500.0, help="fastest nominal shaft speed")
    speed_variation: float = spec_field(0.02, min=0.0, max=0.2, help="relative shaft-speed fluctuation")
    noise_g: float = spec_field(0.005, min=0.0, max=1.0, help="sensor noise (g rms)")
    train_windows: int = spec_field(2000, min=10, max=200000)
    val_windows: int = spec_field(400, min=10, max=200000)
    test_normal_windows: int = spec_field(500, min=10, max=200000)
    test_faulty_windows: int = spec_field(500, min=10, max=200000, help="split evenly across `faults`")
    faults: list[str] = spec_field(list(FAULTS), choices=FAULTS, help="fault kinds in the test split")
    severity_min: float = spec_field(0.5, min=0.0, max=10.0, help="weakest test fault, x nominal amplitude")
    severity_max: float = spec_field(1.5, min=0.0, max=10.0, help="strongest test fault, x nominal amplitude")
    machines: int = spec_field(
        0, min=0, max=10000, help="a fleet of this many machines, each in its own shaft-speed slice and load (0: a fresh machine per window)"
    )
    load_min: float = spec_field(0.3, min=0.0, max=2.0, help="lightest machine load of the fleet, x rated load")
    load_max: float = spec_field(1.0, min=0.0, max=2.0, help="heaviest machine load of the fleet, x rated load")

    def __post_init__(self) -> None:
        if self.bands > self.segment // 2:
            raise MCUForgeError(
                f"data.options.bands: expected at most segment/2 = {self.segment // 2}. Received: {self.bands}"
            )
        if self.shaft_hz_max < self.shaft_hz_min:
            raise MCUForgeError(
                f"data.options.shaft_hz_max: expected >= shaft_hz_min ({self.shaft_hz_min}). Received: {self.shaft_hz_max}"
            )
        if self.severity_max < self.severity_min:
            raise MCUForgeError(
                f"data.options.severity_max: expected >= severity_min ({self.severity_min}). Received: {self.severity_max}"
            )
        if self.load_max < self.load_min:
            raise MCUForgeError(f"data.options.load_max: expected >= load_min ({self.load_min}). Received: {self.load_max}")
        if self.machines > self.train_windows:
            raise MCUForgeError(
                f"data.options.machines: expected at most train_windows ({self.train_windows}), one window per machine at least. "
                f"Received: {self.machines}"
            )
        if not self.faults:
            raise MCUForgeError(f"data.options.faults: expected at least one of {', '.join(FAULTS)}. Received: []")
        if len(set(self.faults)) != len(self.faults):
            raise MCUForgeError(f"data.options.faults: expected each fault once. Received: {self.faults}")
        fastest = self.shaft_hz_max * (1 + self.speed_variation)
        highest = max(_RESONANCE_HZ[1], 3 * BEARING.frequencies(fastest)["bpfi"])
        if highest >= self.sample_rate_hz / 2:
            raise MCUForgeError(
                f"data.options.sample_rate_hz: expected > {2 * highest:.0f} so the resonance and bearing "
                f"harmonics at shaft_hz_max stay below Nyquist. Received: {self.sample_rate_hz}"
            )

    @property
    def window(self) -> int:
        """Samples per feature window."""
        return self.segment * self.segments_per_window


OPTIONS = VibrationOptions


@dataclass(frozen=True)
class Machine:
    """One machine's healthy state (amplitudes in g; the imbalance's at NOMINAL_SHAFT_HZ); phases are drawn per run."""

    shaft_hz: float
    speed_variation: float
    imbalance_g: float
    harmonic2_g: float
    harmonic3_g: float
    axial1_g: float
    axial2_g: float
    resonance_hz: float
    resonance_damping: float
    structural_g: float
    noise_g: float


def random_machine(options: VibrationOptions, rng: np.random.Generator) -> Machine:
    """A healthy machine drawn from the normal population."""
    u = rng.uniform
    return Machine(
        shaft_hz=u(options.shaft_hz_min, options.shaft_hz_max),
        speed_variation=options.speed_variation,
        imbalance_g=u(0.04, 0.07),
        harmonic2_g=u(0.005, 0.02),
        harmonic3_g=u(0.002, 0.01),
        axial1_g=u(0.005, 0.02),
        axial2_g=u(0.003, 0.01),
        resonance_hz=u(*_RESONANCE_HZ),
        resonance_damping=u(0.03, 0.06),
        structural_g=u(0.01, 0.02),
        noise_g=options.noise_g * u(0.8, 1.2),
    )


@dataclass(frozen=True)
class FleetMachine:
    """A machine of a fleet: its healthy state, the shaft speeds it runs at and its load."""

    healthy: Machine  # broadband forces already scaled by the load
    shaft_hz_range: tuple[float, float]
    load: float  # x rated load

    def running(self, rng: np.random.Generator) -> Machine:
        """The machine during one window: a nominal shaft speed drawn from its range."""
        return replace(self.healthy, shaft_hz=rng.uniform(*self.shaft_hz_range))


def fleet(options: VibrationOptions, seed: int) -> list[FleetMachine]:
    """The `machines` machines of the fleet: machine m runs in the m-th of `machines` equal slices of
    [shaft_hz_min, shaft_hz_max], under a load drawn from [load_min, load_max]; the broadband forces
    that excite the housing resonance grow with the load (the population's amplitudes are at rated load)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0xF1EE7]))
    width = (options.shaft_hz_max - options.shaft_hz_min) / max(options.machines, 1)
    machines = []
    for m in range(options.machines):
        load = rng.uniform(options.load_min, options.load_max)
        healthy = random_machine(options, rng)
        low = options.shaft_hz_min + m * width
        machines.append(FleetMachine(replace(healthy, structural_g=healthy.structural_g * load), (low, low + width), load))
    return machines


def train_machine_ids(options: VibrationOptions) -> np.ndarray:
    """The fleet machine of each training window, in `load`'s order: one block of windows per machine."""
    return np.arange(options.train_windows) * options.machines // options.train_windows


# Fault amplitudes at severity 1 (g). Bearing impacts are the peak of the housing's ringing.
IMBALANCE_G = 0.25
MISALIGNMENT_G = {"axial1": 0.04, "axial2": 0.08, "radial2": 0.04}
BEARING_IMPACT_G = 0.5
BEARING_SLIP = 0.01  # relative jitter of impact times (rolling elements slip)
BEARING_AXIAL_SHARE = 0.3
MODULATION_DEPTH = 0.6


def _resonator(x: np.ndarray, hz: float, damping: float, sample_rate: float) -> np.ndarray:
    """Ring a two-pole resonator; its impulse response is r^n sin((n+1)w), peak about 1."""
    from scipy.signal import lfilter

    w = 2 * math.pi * hz / sample_rate
    r = math.exp(-damping * w)
    return lfilter([math.sin(w)], [1.0, -2 * r * math.cos(w), r * r], x)


def _speed_profile(machine: Machine, n: int, sample_rate: float, rng: np.random.Generator) -> np.ndarray:
    """Instantaneous shaft speed (Hz) per sample: the nominal speed with a smooth random fluctuation."""
    t = np.arange(n) / sample_rate
    wobble = sum(np.sin(2 * math.pi * rng.uniform(*_SPEED_WOBBLE_HZ) * t + rng.uniform(0, 2 * math.pi)) for _ in range(3))
    return machine.shaft_hz * (1 + machine.speed_variation * wobble / 3)


def _impacts(
    defect_hz: np.ndarray, amplitude: np.ndarray, onset: int, sample_rate: float, rng: np.random.Generator
) -> np.ndarray:
    """An impulse train at the defect frequency, split between neighbouring samples for sub-sample timing."""
    n = len(defect_hz)
    cycles = np.cumsum(defect_hz) / sample_rate + rng.uniform(0, 1)
    crossings = np.nonzero(np.floor(cycles[1:]) > np.floor(cycles[:-1]))[0]
    fraction = (np.floor(cycles[crossings + 1]) - cycles[crossings]) / (cycles[crossings + 1] - cycles[crossings])
    times = crossings + fraction + rng.normal(0, BEARING_SLIP, len(crossings)) * sample_rate / defect_hz[crossings]
    strengths = amplitude[crossings]
    keep = (times >= onset) & (times < n - 1)
    times, strengths = times[keep], strengths[keep]
    train = np.zeros(n)
    whole = np.floor(times).astype(np.int64)
    np.add.at(train, whole, strengths * (1 - (times - whole)))
    np.add.at(train, whole + 1, strengths * (times - whole))
    return train


def simulate(
    machine: Machine,
    n: int,
    sample_rate: float,
    rng: np.random.Generator,
    fault: str | None = None,
    severity: float = 1.0,
    onset: int = 0,
) -> np.ndarray:
    """`n` samples of (radial, axial) acceleration in g; `fault` starts at sample `onset`."""
    if fault is not None and fault not in FAULTS:
        raise MCUForgeError(f"fault: expected one of {', '.join(FAULTS)} or None. Received: {fault!r}")
    speed = _speed_profile(machine, n, sample_rate, rng)
    theta = 2 * math.pi * np.cumsum(speed) / sample_rate
    growth = (speed / NOMINAL_SHAFT_HZ) ** 2  # centrifugal forces grow with the square of speed
    phase = rng.uniform(0, 2 * math.pi, 6)
    on = (np.arange(n) >= onset).astype(np.float64) * severity if fault else np.zeros(n)

    imbalance = machine.imbalance_g + (IMBALANCE_G * on if fault == "imbalance" else 0.0)
    misaligned = on if fault == "misalignment" else np.zeros(n)
    radial = (
        imbalance * growth * np.sin(theta + phase[0])
        + (machine.harmonic2_g + MISALIGNMENT_G["radial2"] * misaligned) * np.sin(2 * theta + phase[1])
        + machine.harmonic3_g * np.sin(3 * theta + phase[2])
    )
    axial = (machine.axial1_g + MISALIGNMENT_G["axial1"] * misaligned) * np.sin(theta + phase[3]) + (
        machine.axial2_g + MISALIGNMENT_G["axial2"] * misaligned
    ) * np.sin(2 * theta + phase[4])

    structural = _resonator(rng.normal(0, 1, n), machine.resonance_hz, machine.resonance_damping, sample_rate)
    structural *= machine.structural_g / max(float(np.std(structural)), 1e-12)
    radial += structural
    axial += 0.5 * structural

    if fault is not None and fault.startswith("bearing"):
        radial_impacts = _resonator(
            _bearing_impacts(fault, speed, theta, phase[5], severity, onset, sample_rate, rng),
            machine.resonance_hz,
            machine.resonance_damping,
            sample_rate,
        )
        radial += radial_impacts
        axial += BEARING_AXIAL_SHARE * radial_impacts

    noise = rng.normal(0, machine.noise_g, (n, 2))
    return np.stack([radial, axial], axis=1) + noise


def _bearing_impacts(
    fault: str,
    speed: np.ndarray,
    theta: np.ndarray,
    phase: float,
    severity: float,
    onset: int,
    sample_rate: float,
    rng: np.random.Generator,
) -> np.ndarray:
    freqs = BEARING.frequencies(speed)
    amplitude = np.full(len(speed), BEARING_IMPACT_G * severity)
    if fault == "bearing_outer":  # stationary defect in the load zone: constant impacts
        defect_hz = freqs["bpfo"]
    elif fault == "bearing_inner":  # the defect turns with the shaft through the load zone
        defect_hz = freqs["bpfi"]
        amplitude *= (1 + MODULATION_DEPTH * np.cos(theta + phase)) / (1 + MODULATION_DEPTH)
    else:  # a ball defect strikes both races once per spin, carried by the cage through the load zone
        defect_hz = 2 * freqs["bsf"]
        cage = 2 * math.pi * np.cumsum(freqs["ftf"]) / sample_rate
        amplitude *= (1 + MODULATION_DEPTH * np.cos(cage + phase)) / (1 + MODULATION_DEPTH)
    return _impacts(defect_hz, amplitude, onset, sample_rate, rng)


def to_counts(g: np.ndarray) -> np.ndarray:
    """Acceleration in g as the sensor's int16 counts (rounded, saturating)."""
    return np.clip(np.round(g * COUNTS_PER_G), -32768, 32767).astype(np.int16)


# ---------------------------------------------------------------------------
# Features: integer arithmetic only, so firmware can match them bit for bit.


def hann_q15(segment: int) -> np.ndarray:
    """Periodic Hann window in Q15."""
    n = np.arange(segment)
    return np.round(Q15_ONE * 0.5 * (1 - np.cos(2 * np.pi * n / segment))).astype(np.int64)


def dft_tables_q15(segment: int) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin tables in Q15, shape [segment, segment // 2]: bins 0 .. segment/2 - 1."""
    angle = 2 * np.pi * np.outer(np.arange(segment), np.arange(segment // 2)) / segment
    return np.round(Q15_ONE * np.cos(angle)).astype(np.int64), np.round(Q15_ONE * np.sin(angle)).astype(np.int64)


def log2_q8(power: np.ndarray) -> np.ndarray:
    """Piecewise-linear log2 in Q8 of non-negative int64: exponent * 256 + linear mantissa; 0 -> 0."""
    power = np.asarray(power, dtype=np.int64)
    positive = np.maximum(power, 1)
    exponent = np.floor(np.log2(positive.astype(np.float64))).astype(np.int64)
    exponent -= (positive >> exponent) == 0  # float rounding may overshoot near powers of two
    exponent += (positive >> np.minimum(exponent + 1, 62)) != 0
    shift = exponent - LOG2_FRACTION_BITS
    mantissa = np.where(shift >= 0, positive >> np.maximum(shift, 0), positive << np.maximum(-shift, 0))
    return np.where(power > 0, exponent * (1 << LOG2_FRACTION_BITS) + mantissa - (1 << LOG2_FRACTION_BITS), 0)


def _round_shift(value: np.ndarray, bits: int) -> np.ndarray:
    """value / 2^bits rounded half up: add half, then an arithmetic right shift."""
    return (value + (1 << (bits - 1))) >> bits


def window_features(counts: np.ndarray, segment: int, bands: int) -> np.ndarray:
    """Log2 band powers per axis of int16 windows [..., samples, axes] -> float32 [..., axes * bands].

    Per axis and segment of N samples with sum S: xw = round((N*x - S) * hann / 2^(15 + log2 N - 4))
    (the mean removed exactly, 4 fractional bits kept), re and im = round(DFT of xw with the Q15 tables / 2^DFT_SHIFT)
    for bins 0 .. N/2 - 1, power = re^2 + im^2 summed over the segments and over the bins of
    each band (int64), then log2_q8(power) / FEATURE_DIVISOR. Rounding is "add half, then
    arithmetic shift right" (what GCC and Clang do for signed integers). Every intermediate
    is an integer below 2^53, so the float64 matrix product below is exact.
    """
    counts = np.asarray(counts)
    if counts.dtype != np.int16:
        raise MCUForgeError(f"window_features: expected int16 sensor counts. Received dtype {counts.dtype}")
    *lead, samples, axes = counts.shape
    if samples % segment:
        raise MCUForgeError(f"window_features: expected a multiple of segment={segment} samples. Received {samples}")
    x = np.moveaxis(counts.astype(np.int64), -1, -2).reshape(*lead, axes, samples // segment, segment)
    centred = x * segment - x.sum(axis=-1, keepdims=True)
    shift = 15 + segment.bit_length() - 1 - WINDOWED_FRACTION_BITS
    xw = _round_shift(centred * hann_q15(segment), shift).astype(np.float64)
    cos, sin = dft_tables_q15(segment)
    re = _round_shift(np.rint(xw @ cos).astype(np.int64), DFT_SHIFT)
    im = _round_shift(np.rint(xw @ sin).astype(np.int64), DFT_SHIFT)
    power = (re * re + im * im).sum(axis=-2)  # over segments: [..., axes, bins]
    power = power.reshape(*power.shape[:-1], bands, -1).sum(axis=-1)
    features = log2_q8(power) / FEATURE_DIVISOR
    return features.reshape(*lead, axes * bands).astype(np.float32)


# ---------------------------------------------------------------------------
# The data set and the demo stream.


def _windows(
    options: VibrationOptions,
    count: int,
    rng: np.random.Generator,
    fault: str | None = None,
    machines: list[FleetMachine] | None = None,
    ids: np.ndarray | None = None,
) -> np.ndarray:
    """`count` independent windows as int16 counts [count, window, 2]: a fresh machine each, or with
    `machines`, fleet machine `ids[i]` (drawn at random when `ids` is None) for window i."""
    if machines and ids is None:
        ids = rng.integers(len(machines), size=count)
    out = np.empty((count, options.window, 2), dtype=np.int16)
    for i in range(count):
        machine = machines[ids[i]].running(rng) if machines else random_machine(options, rng)
        severity = rng.uniform(options.severity_min, options.severity_max) if fault else 1.0
        out[i] = to_counts(simulate(machine, options.window, options.sample_rate_hz, rng, fault, severity))
    return out


def _features(options: VibrationOptions, counts: np.ndarray) -> np.ndarray:
    return window_features(counts, options.segment, options.bands)


def _streams(seed: int, faults: int) -> list[np.random.Generator]:
    """The data set's random streams: train, val, test normal, then one per fault."""
    return [np.random.default_rng(s) for s in np.random.SeedSequence([seed, 0x5EB1]).spawn(3 + faults)]


def train_counts(options: VibrationOptions, seed: int) -> np.ndarray:
    """The training windows as the sensor recorded them (int16 counts [windows, window, 2]), in `load`'s order."""
    machines = fleet(options, seed)
    return _windows(options, options.train_windows, _streams(seed, len(options.faults))[0], None, machines, train_machine_ids(options))


def load(options: VibrationOptions, seed: int, cache_dir: Path) -> Dataset:
    """Normal windows for train and val; normal then faulty windows (in blocks per fault) for test."""
    rng = _streams(seed, len(options.faults))
    machines = fleet(options, seed)
    x_train = _features(options, train_counts(options, seed))
    x_val = _features(options, _windows(options, options.val_windows, rng[1], None, machines))
    per_fault = np.full(len(options.faults), options.test_faulty_windows // len(options.faults))
    per_fault[: options.test_faulty_windows % len(options.faults)] += 1
    blocks = [("normal", _windows(options, options.test_normal_windows, rng[2], None, machines))]
    blocks += [(f, _windows(options, int(k), r, f, machines)) for f, k, r in zip(options.faults, per_fault, rng[3:])]
    x_test = np.concatenate([_features(options, counts) for _, counts in blocks])
    y_test = np.concatenate([np.full(len(counts), int(name != "normal")) for name, counts in blocks])
    layout, start = [], 0
    for name, counts in blocks:
        layout.append({"condition": name, "start": start, "count": len(counts)})
        start += len(counts)
    return Dataset(
        name="vibration",
        task=ANOMALY,
        x_train=x_train,
        y_train=np.zeros(len(x_train), dtype=np.int64),
        x_val=x_val,
        y_val=np.zeros(len(x_val), dtype=np.int64),
        x_test=x_test,
        y_test=y_test.astype(np.int64),
        class_names=["normal", "anomalous"],
        notes={
            "sample_rate_hz": options.sample_rate_hz,
            "window_samples": options.window,
            "features": f"log2 band power: {len(AXES)} axes ({', '.join(AXES)}) x {options.bands} bands "
            f"of {options.sample_rate_hz / 2 / options.bands:g} Hz",
            "test_layout": layout,
        },
    )


@dataclass(frozen=True)
class VibrationStream:
    """A continuous recording with a fault injected at `fault_onset_s`, cut into feature windows."""

    counts: np.ndarray  # int16 [samples, 2]
    features: np.ndarray  # float32 [windows, 2 * bands]
    faulty: np.ndarray  # bool [windows]: the window holds faulty samples
    sample_rate_hz: int
    window: int
    fault: str
    fault_onset_s: float

    @property
    def window_start_s(self) -> np.ndarray:
        return np.arange(len(self.features)) * self.window / self.sample_rate_hz


def stream(
    options: VibrationOptions, seed: int, seconds: float, fault: str, fault_at_s: float, severity: float = 1.0
) -> VibrationStream:
    """One healthy machine running for `seconds`, developing `fault` at `fault_at_s`; same features as training."""
    if fault not in FAULTS:
        raise MCUForgeError(f"fault: expected one of {', '.join(FAULTS)}. Received: {fault!r}")
    windows = int(seconds * options.sample_rate_hz) // options.window
    if windows < 1:
        raise MCUForgeError(
            f"seconds: expected at least one window ({options.window / options.sample_rate_hz:g} s). Received: {seconds}"
        )
    if not 0 <= fault_at_s <= seconds:
        raise MCUForgeError(f"fault_at_s: expected a time between 0 and seconds={seconds}. Received: {fault_at_s}")
    n = windows * options.window
    onset = int(round(fault_at_s * options.sample_rate_hz))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x57E4]))
    machine = random_machine(options, rng)
    counts = to_counts(simulate(machine, n, options.sample_rate_hz, rng, fault, severity, onset))
    ends = (np.arange(windows) + 1) * options.window
    return VibrationStream(
        counts=counts,
        features=_features(options, counts.reshape(windows, options.window, 2)),
        faulty=ends > onset,
        sample_rate_hz=options.sample_rate_hz,
        window=options.window,
        fault=fault,
        fault_onset_s=onset / options.sample_rate_hz,
    )
