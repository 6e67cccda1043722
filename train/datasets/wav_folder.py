"""Users' own keyword recordings: a folder of WAV files per class, in the Speech Commands layout.

    root/
      yes/0a7c2a8d_nohash_0.wav      <speaker>_nohash_<take>.wav, one-second 16 kHz clips
      no/...
      _background_noise_/*.wav        optional long noise recordings: cut into 1 s `_silence_` clips
      validation_list.txt             optional: Speech Commands' own split (paths relative to root)
      testing_list.txt

Other sample rates, widths and channel counts are converted with sox; clips are
padded (centered) or cropped to one second. Without the two list files, each
speaker goes wholly to train, validation or test by a hash of its id, as
Speech Commands does, so no speaker is in two splits. Features come from the
same fixed-point extractor as the synthetic `keywords` set.
"""

from __future__ import annotations

import hashlib
import wave
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mcuforge import features
from mcuforge.features import DEFAULT_STRIDE_MS, MAX_STRIDE_MS
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import CLASSIFICATION, Dataset

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
BACKGROUND = "_background_noise_"
SILENCE, UNKNOWN = "_silence_", "_unknown_"


@dataclass(frozen=True)
class WavFolderOptions:
    path: str = spec_field(help="root folder: one sub-folder of WAV files per class")
    classes: list[str] = spec_field([], help="classes in label order; empty: every sub-folder, sorted")
    val_percent: float = spec_field(10.0, min=0.0, max=40.0, help="share of speakers for validation")
    test_percent: float = spec_field(10.0, min=0.0, max=40.0, help="share of speakers for test")
    features: str = spec_field("mfcc", choices=("mfcc", "logmel"), help="49x10 MFCC or 49x40 log-mel frames")
    num_mfcc: int = spec_field(10, min=1, max=13, help="cepstral coefficients per frame (features: mfcc)")
    frame_stride_ms: int = spec_field(
        DEFAULT_STRIDE_MS, min=1, max=MAX_STRIDE_MS,
        help="milliseconds between feature frames (30 ms windows): one second gives 49 frames at 20, 33 at 30, 25 at 40",
    )


OPTIONS = WavFolderOptions


@dataclass
class Recordings:
    """One-second int16 clips with their labels and where each came from."""

    clips: np.ndarray  # int16 [n, 16000]
    labels: np.ndarray  # int64 [n]
    files: list[str]  # relative to the root; background windows as "<file>#<second>"
    speakers: list[str]


def read_wav(path: Path) -> np.ndarray:
    """A WAV file as 16 kHz mono int16, converted by sox when it is in another format."""
    try:
        with wave.open(str(path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (SAMPLE_RATE, 1, 2):
                return np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
    except (wave.Error, EOFError):
        pass  # e.g. float or extensible WAV: sox reads those
    from mcuforge.train.datasets.keywords import sox_to_pcm

    return sox_to_pcm(path, [])


def fit_clip(pcm: np.ndarray) -> np.ndarray:
    """Pad (centered) or crop (keeping the middle) to exactly one second."""
    if len(pcm) >= CLIP_SAMPLES:
        start = (len(pcm) - CLIP_SAMPLES) // 2
        return pcm[start : start + CLIP_SAMPLES]
    clip = np.zeros(CLIP_SAMPLES, np.int16)
    start = (CLIP_SAMPLES - len(pcm)) // 2
    clip[start : start + len(pcm)] = pcm
    return clip


def speaker_of(filename: str) -> str:
    """Speech Commands names takes `<speaker>_nohash_<n>.wav`; otherwise the whole stem is the speaker."""
    stem = Path(filename).stem
    return stem.split("_nohash_")[0]


def read_speech_commands(root: Path, class_names: list[str], where: str) -> Recordings:
    """Every take under `root` whose folder is a class; other words become `_unknown_` when that is a class.

    `_background_noise_` recordings are cut into one-second `_silence_` clips when that is a class.
    """
    root = Path(root)
    if not root.is_dir():
        raise MCUForgeError(f"{where}: folder not found: {root}. Give a folder with one sub-folder of WAV files per class")
    clips, labels, files, speakers = [], [], [], []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        if folder.name == BACKGROUND:
            if SILENCE in class_names:
                for path in sorted(folder.glob("*.wav")):
                    pcm = read_wav(path)
                    for second in range(len(pcm) // CLIP_SAMPLES):
                        clips.append(pcm[second * CLIP_SAMPLES : (second + 1) * CLIP_SAMPLES])
                        labels.append(class_names.index(SILENCE))
                        files.append(f"{BACKGROUND}/{path.name}#{second}")
                        speakers.append(f"{BACKGROUND}/{path.name}")
            continue
        if folder.name in class_names:
            label = class_names.index(folder.name)
        elif UNKNOWN in class_names:
            label = class_names.index(UNKNOWN)
        else:
            continue
        for path in sorted(folder.glob("*.wav")):
            clips.append(fit_clip(read_wav(path)))
            labels.append(label)
            files.append(f"{folder.name}/{path.name}")
            speakers.append(speaker_of(path.name))
    if not clips:
        raise MCUForgeError(
            f"{where}: no WAV files in class folders under {root}. Expected {root}/<class>/<speaker>_nohash_<n>.wav "
            f"with classes among {', '.join(class_names)}"
        )
    return Recordings(np.stack(clips).astype(np.int16), np.array(labels, np.int64), files, speakers)


def _bucket(speaker: str) -> float:
    """A stable percentage in [0, 100) from the speaker id, so a speaker's split never changes."""
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 10000 / 100.0


def _split_of(recordings: Recordings, root: Path, options: WavFolderOptions) -> list[str]:
    listed = {name: root / f"{name}_list.txt" for name in ("validation", "testing")}
    if all(p.is_file() for p in listed.values()):
        val = set(listed["validation"].read_text().split())
        test = set(listed["testing"].read_text().split())
        return ["val" if f in val else "test" if f in test else "train" for f in recordings.files]
    splits = []
    for speaker in recordings.speakers:
        bucket = _bucket(speaker)
        splits.append("val" if bucket < options.val_percent else "test" if bucket < options.val_percent + options.test_percent else "train")
    return splits


def load(options: WavFolderOptions, seed: int, cache_dir: Path) -> Dataset:
    """Read, split by speaker and featurize the folder; the seed does not matter (the split is by hash)."""
    root = Path(options.path)
    if not root.is_dir():
        raise MCUForgeError(f"data.options.path: folder not found: {root}")
    classes = list(options.classes) or sorted(p.name for p in root.iterdir() if p.is_dir() and p.name != BACKGROUND)
    recordings = read_speech_commands(root, classes, "data.options.path")
    stride = features.stride_samples(options.frame_stride_ms)
    x = (features.extract(recordings.clips, options.features, options.num_mfcc, stride).astype(np.float32) * np.float32(features.SCALE))[..., None]
    split = np.array(_split_of(recordings, root, options))
    arrays = {}
    for name in ("train", "val", "test"):
        chosen = split == name
        if not chosen.any():
            raise MCUForgeError(
                f"data.options.path: no recordings fall in the {name} split ({len(set(recordings.speakers))} speakers in all). "
                "Add speakers, adjust val_percent/test_percent, or provide validation_list.txt and testing_list.txt"
            )
        arrays[name] = (x[chosen], recordings.labels[chosen])
    return Dataset(
        name="wav_folder",
        task=CLASSIFICATION,
        x_train=arrays["train"][0],
        y_train=arrays["train"][1],
        x_val=arrays["val"][0],
        y_val=arrays["val"][1],
        x_test=arrays["test"][0],
        y_test=arrays["test"][1],
        class_names=classes,
        notes={
            "features": options.features if options.features == "logmel" else f"mfcc{options.num_mfcc}",
            "feature_scale": features.SCALE,
            "speakers": {name: len({s for s, k in zip(recordings.speakers, split) if k == name}) for name in ("train", "val", "test")},
        },
    )
