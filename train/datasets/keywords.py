"""Keyword spotting in the style of Speech Commands, synthesized locally (nothing is downloaded).

Speakers are voice combinations of espeak-ng (English accent x voice variant,
each with its own pitch and speed), of the more natural flite and festival
voices (voice x pitch x tempo), of neural Piper voices (`voices`: voice x
pitch x vocal-tract warp x, with `neural_accents`, the espeak-ng dialect whose
phonemes it reads; each with its own rate and sampling noise), of the
Hibari voice (`hibari_voice`: pitch x warp x accent, its own speed) and of
Kokoro-82M (`kokoro`: a blend of its style vectors x speed x pitch x warp). Each
speaker says every keyword `repetitions` times, each take augmented with sox
(pitch, tempo, optionally reverb), placed in a one-second 16 kHz clip with a
random time shift, optionally reverberated in a simulated room, mixed with
locally synthesized background noise at a random SNR and passed through a
random microphone and the 16-bit converter over its own noise floor
(`acoustics`). `_unknown_` takes
are other words, `_silence_` clips are noise alone, so every class has the
same count (unless training speakers say `extra_unknown_takes` more other
words). A user's own recordings (`real_train_dir`) join the training split;
a share of the training clips can get SpecAugment-style feature masks. A
speaker's takes of one word are views of one another for consistency
training (`train_view_groups`).

Train, validation and test speakers are disjoint voice combinations, so test
accuracy measures generalization to voices never heard in training.

Features come from the fixed-point C extractor the device runs
(mcuforge.features): int16 log2 units scaled by `feature_scale` (in
`notes`) to float32. Clips are cached per speaker and features per data set,
keyed by hashes of everything that produces them.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import subprocess
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from mcuforge import features
from mcuforge.features import DEFAULT_STRIDE_MS, MAX_STRIDE_MS
from mcuforge.artifacts import write_bytes_atomic
from mcuforge.config import spec_field
from mcuforge.errors import MCUForgeError
from mcuforge.train.datasets import CLASSIFICATION, Dataset, acoustics, hibari_voice, kokoro, voices
from mcuforge.train.datasets.wav_folder import read_speech_commands

SAMPLE_RATE = 16000
CLIP_SAMPLES = SAMPLE_RATE
SILENCE, UNKNOWN = "_silence_", "_unknown_"
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
# Speech Commands' auxiliary words, spoken for the _unknown_ class.
UNKNOWN_WORDS = [
    "bed", "bird", "cat", "dog", "eight", "five", "four", "happy", "house", "marvin", "nine", "one",
    "seven", "sheila", "six", "three", "tree", "two", "wow", "zero", "learn", "follow", "forward", "backward", "visual",
]
ENGINES = ["espeak-ng", "flite", "festival", "piper", "kokoro", "hibari"]
ESPEAK_ACCENTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029", "en-us-nyc"]
# espeak-ng's human-sounding voice variants (the robotic, whispering and croaking ones are left out).
ESPEAK_VARIANTS = [
    "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt", "klatt2", "klatt3",
    "klatt4", "Alex", "Alicia", "Andrea", "Andy", "Annie", "Denis", "Diogo", "Gene", "Gene2", "Henrique", "Hugo",
    "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Nguyen", "adam", "anika", "announcer", "antonio", "aunty",
    "belinda", "benjamin", "boris", "caleb", "david", "ed", "edward", "edward2", "grandma", "grandpa", "gustave",
    "iven", "iven2", "iven3", "iven4", "john", "linda", "marcelo", "max", "michel", "miguel", "norbert", "pablo",
    "paul", "pedro", "quincy", "rob", "robert", "sandro", "shelby", "steph", "steph2", "steph3", "travis", "victor", "zac",
]
FLITE_VOICES = ["kal", "kal16", "awb", "rms", "slt"]
FESTIVAL_VOICES = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
# Speaker-level pitch shifts (cents) and tempo factors that turn one natural voice into several speakers.
NATURAL_PITCHES = [-400, -250, -120, 0, 120, 250, 400]
NATURAL_TEMPOS = [0.85, 0.95, 1.05, 1.15]
# Neural speakers' vocal-tract-length warps (Piper and Kokoro).
VOCAL_TRACT_WARPS = [0.84, 0.88, 0.92, 0.96, 1.0, 1.04, 1.08, 1.12, 1.16]
# Piper speakers: voice x pitch shift (cents) x vocal-tract warp; rate and sampling noise drawn per speaker.
PIPER_PITCHES = list(range(-500, 501, 100))
PIPER_LENGTH_SCALES = (0.8, 1.3)
PIPER_NOISE_SCALES = (0.4, 0.9)
PIPER_NOISE_WS = (0.4, 1.0)
# Kokoro speakers: a blend of its five style vectors (Dirichlet weights; alpha below 1: one
# or two voices dominate each blend), a speaking speed, a pitch shift (cents; four of the five voices are
# female, so mostly down) and a vocal-tract warp, drawn per candidate speaker.
KOKORO_CANDIDATES = 1000
KOKORO_BLEND_ALPHA = 0.5
KOKORO_SPEEDS = (0.8, 1.2)
KOKORO_PITCHES = list(range(-700, 301, 100))
# Hibari speakers (one female voice): pitch shift (cents, mostly down) x vocal-tract warp, a speed drawn per speaker.
HIBARI_PITCHES = list(range(-700, 301, 100))
HIBARI_SPEEDS = (0.8, 1.2)
# Bump when the synthesis changes in a way the options do not show, to invalidate caches.
SYNTHESIS_VERSION = 3
WORD_PATTERN = re.compile(r"^[a-z][a-z' ]{0,30}$")

FEATURE_NORMALIZATIONS = tuple(features.NORMALIZATIONS)  # per clip, by the device's extractor


@dataclass(frozen=True)
class KeywordsOptions:
    words: list[str] = spec_field(KEYWORDS, help="the keywords, one class each")
    unknown_words: list[str] = spec_field(UNKNOWN_WORDS, help="other words, spoken for _unknown_")
    engines: list[str] = spec_field(ENGINES, choices=ENGINES, help="speech synthesizers to draw speakers from")
    speakers: int = spec_field(300, min=3, max=2000, help="number of distinct voice combinations")
    natural_share: float = spec_field(0.3, min=0.0, max=1.0, help="share of speakers from flite/festival voices")
    neural_share: float = spec_field(0.0, min=0.0, max=1.0, help="share of speakers from Piper voices (engine piper; needs the voices extra)")
    hibari_share: float = spec_field(0.0, min=0.0, max=1.0, help="share of speakers from the Hibari voice (engine hibari; needs the voices extra)")
    neural_accents: list[str] = spec_field(
        [], choices=ESPEAK_ACCENTS,
        help="espeak-ng English dialects whose phonemes Piper and Hibari speakers read, one drawn per speaker (empty: the voice's own)",
    )
    kokoro_share: float = spec_field(0.0, min=0.0, max=1.0, help="share of speakers from Kokoro-82M style blends (engine kokoro; needs the voices extra)")
    val_share: float = spec_field(0.1, min_exclusive=0.0, max=0.4, help="share of speakers held out for validation")
    test_share: float = spec_field(0.15, min_exclusive=0.0, max=0.4, help="share of speakers held out for test")
    repetitions: int = spec_field(4, min=1, max=100, help="augmented takes per speaker and class")
    extra_unknown_takes: int = spec_field(0, min=0, max=100, help="more _unknown_ takes (other words) per training speaker, on top of repetitions")
    features: str = spec_field("mfcc", choices=("mfcc", "logmel"), help="49x10 MFCC or 49x40 log-mel frames")
    num_mfcc: int = spec_field(10, min=1, max=13, help="cepstral coefficients per frame (features: mfcc)")
    frame_stride_ms: int = spec_field(
        DEFAULT_STRIDE_MS, min=1, max=MAX_STRIDE_MS,
        help="milliseconds between feature frames (30 ms windows): one second gives 49 frames at 20, 33 at 30, 25 at 40",
    )
    feature_normalization: str = spec_field(
        "none", choices=FEATURE_NORMALIZATIONS,
        help="per clip (the device's window): mean subtracts each feature column's mean; mean_variance also divides by its deviation",
    )
    pitch_cents: int = spec_field(150, min=0, max=1200, help="largest sox pitch shift per take")
    tempo_change: float = spec_field(0.12, min=0.0, max=0.5, help="largest relative sox tempo change per take")
    reverb_probability: float = spec_field(0.4, min=0.0, max=1.0, help="share of takes with sox reverb")
    room_probability: float = spec_field(0.0, min=0.0, max=1.0, help="share of takes reverberated in a simulated room (voices extra)")
    microphone_probability: float = spec_field(0.0, min=0.0, max=1.0, help="share of clips through a random microphone and channel")
    noise_probability: float = spec_field(0.85, min=0.0, max=1.0, help="share of takes mixed with background noise")
    snr_db_min: float = spec_field(0.0, min=-20.0, max=60.0, help="lowest speech-to-noise ratio")
    snr_db_max: float = spec_field(30.0, min=-20.0, max=60.0, help="highest speech-to-noise ratio")
    time_shift_ms: int = spec_field(100, min=0, max=500, help="largest random shift of the word in its clip")
    feature_mask_share: float = spec_field(0.0, min=0.0, max=1.0, help="share of training clips whose features get a SpecAugment-style time and band mask")
    consistency_views: str = spec_field(
        "speaker_word", choices=("speaker_word", "word"),
        help="training takes that train.consistency_weight pairs: one speaker's takes of a word, or any speakers' takes of it",
    )
    real_eval_dir: str | None = spec_field(None, help="folder of real recordings (Speech Commands layout), evaluated separately")
    real_eval_optional: bool = spec_field(False, help="skip real_eval_dir when the folder is absent instead of failing")
    real_train_dir: str | None = spec_field(None, help="your own recordings (Speech Commands layout), added to the training split")
    real_train_copies: int = spec_field(4, min=1, max=100, help="augmented copies of each own recording in training (the first unchanged)")
    workers: int = spec_field(2, min=1, max=32, help="parallel synthesis threads (results do not depend on it)")

    def __post_init__(self):
        for where, words in (("words", self.words), ("unknown_words", self.unknown_words)):
            if not words:
                raise MCUForgeError(f"data.options.{where}: expected at least one word. Received: []")
            for word in words:
                if not WORD_PATTERN.match(word):
                    raise MCUForgeError(
                        f"data.options.{where}: expected lower-case words (letters, apostrophes, spaces). Received: {word!r}"
                    )
            if len(set(words)) != len(words):
                raise MCUForgeError(f"data.options.{where}: expected distinct words. Received: {words}")
        overlap = sorted(set(self.words) & set(self.unknown_words))
        if overlap:
            raise MCUForgeError(f"data.options.unknown_words: must not repeat keywords. Received: {overlap}")
        if not self.engines:
            raise MCUForgeError(f"data.options.engines: expected at least one of {', '.join(ENGINES)}. Received: []")
        if self.snr_db_min > self.snr_db_max:
            raise MCUForgeError(
                f"data.options.snr_db_min: expected <= snr_db_max ({self.snr_db_max}). Received: {self.snr_db_min}"
            )
        for split, share in (("val_share", self.val_share), ("test_share", self.test_share)):
            if round(self.speakers * share) < 1:
                raise MCUForgeError(
                    f"data.options.{split}: {share} of {self.speakers} speakers holds out none; raise speakers or {split}"
                )
        if self.val_share + self.test_share >= 0.8:
            raise MCUForgeError(
                f"data.options.val_share + test_share: expected < 0.8 so training keeps speakers. "
                f"Received: {self.val_share + self.test_share:.2f}"
            )

    @property
    def class_names(self) -> list[str]:
        return [SILENCE, UNKNOWN, *self.words]


OPTIONS = KeywordsOptions


NEURAL_ENGINES = ("piper", "kokoro", "hibari")


@dataclass(frozen=True)
class Speaker:
    """One voice combination: an engine's voice with its pitch, speed and (neural voices) vocal-tract warp."""

    engine: str
    voice: str  # piper, hibari: the voice, or voice@dialect to read an espeak-ng dialect's phonemes; kokoro: the style vectors' blend weights, comma-separated in kokoro.STYLES order
    pitch: int  # espeak-ng: -p 0..99; flite/festival/piper/kokoro/hibari: sox pitch shift in cents
    speed: float  # espeak-ng: words per minute; flite/festival: sox tempo factor; piper: VITS length_scale; kokoro/hibari: speed
    warp: float = 1.0  # piper/kokoro/hibari: vocal-tract-length factor

    @property
    def name(self) -> str:
        warp = f":w{self.warp:g}" if self.engine in NEURAL_ENGINES else ""
        return f"{self.engine}:{self.voice}:p{self.pitch}:s{self.speed:g}{warp}"


def _digest(*parts) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:20]


def _stable_seed(seed: int, *parts) -> list[int]:
    return [seed, int(_digest(*parts)[:12], 16)]


def speaker_catalog(options: KeywordsOptions, seed: int) -> dict[str, list[Speaker]]:
    """Disjoint train/val/test speakers; each split mixes the engine families in the same proportions."""
    rng = np.random.default_rng(seed)
    families: list[tuple[str, list[Speaker]]] = []
    if "espeak-ng" in options.engines:
        espeak = []
        for accent in ESPEAK_ACCENTS:
            for variant in ESPEAK_VARIANTS:
                voice_rng = np.random.default_rng(_stable_seed(seed, accent, variant))
                espeak.append(Speaker("espeak-ng", f"{accent}+{variant}", int(voice_rng.integers(20, 80)), int(voice_rng.integers(120, 185))))
        families.append(("espeak-ng", espeak))
    natural_voices = [("flite", v) for v in FLITE_VOICES if "flite" in options.engines]
    natural_voices += [("festival", v) for v in FESTIVAL_VOICES if "festival" in options.engines]
    if natural_voices:
        combos = [Speaker(e, v, p, s) for e, v in natural_voices for p in NATURAL_PITCHES for s in NATURAL_TEMPOS]
        families.append(("flite/festival", combos))
    if "piper" in options.engines and (options.neural_share > 0 or not families):
        families.append(("piper", _voice_speakers("piper", list(voices.PIPER_VOICES), PIPER_PITCHES, PIPER_LENGTH_SCALES, options, seed)))
    if "kokoro" in options.engines and (options.kokoro_share > 0 or not families):
        families.append(("kokoro", kokoro_speakers(seed)))
    if "hibari" in options.engines and (options.hibari_share > 0 or not families):
        families.append(("hibari", _voice_speakers("hibari", [hibari_voice.VOICE], HIBARI_PITCHES, HIBARI_SPEEDS, options, seed, "hibari")))
    # The first family takes the speakers that the other families' shares leave.
    shares = {"flite/festival": options.natural_share, "piper": options.neural_share, "kokoro": options.kokoro_share,
              "hibari": options.hibari_share}
    wanted = [round(options.speakers * shares[name]) for name, _ in families[1:]]
    wanted.insert(0, options.speakers - sum(wanted))
    # Interleave the families in proportion, so every split mixes them like the whole.
    ranked = []
    for (family_name, family), count in zip(families, wanted):
        if count > len(family):
            raise MCUForgeError(
                f"data.options.speakers: the engines offer {len(family)} {family_name} voice combinations, "
                f"{count} requested. Lower speakers or natural_share, or add engines"
            )
        chosen = [family[i] for i in rng.permutation(len(family))[:count]]
        ranked += [((i + 0.5) / count, len(ranked), speaker) for i, speaker in enumerate(chosen)]
    ordered = [speaker for _, _, speaker in sorted(ranked)]
    n_test, n_val = round(options.speakers * options.test_share), round(options.speakers * options.val_share)
    return {"test": ordered[:n_test], "val": ordered[n_test : n_test + n_val], "train": ordered[n_test + n_val :]}


def _voice_speakers(
    engine: str, voice_names: list[str], pitches: list[int], speeds: tuple[float, float], options: KeywordsOptions, seed: int, *salt: str,
) -> list[Speaker]:
    """A neural engine's speakers: voice (x accent, `neural_accents`) x pitch shift x vocal-tract warp, each with a speed
    drawn from its own stream (seeded by `salt` and the speaker, so a speaker does not depend on the others)."""
    speakers = []
    for voice in [f"{name}@{accent}" for name in voice_names for accent in options.neural_accents] or voice_names:
        for pitch in pitches:
            for warp in VOCAL_TRACT_WARPS:
                rng = np.random.default_rng(_stable_seed(seed, *salt, voice, pitch, warp))
                speakers.append(Speaker(engine, voice, pitch, round(float(rng.uniform(*speeds)), 3), warp))
    return speakers


def _voice_and_dialect(speaker: Speaker) -> tuple[str, str | None]:
    """A Piper or Hibari speaker's voice and the espeak-ng dialect it reads (None: the voice's own)."""
    voice, _, dialect = speaker.voice.partition("@")
    return voice, dialect or None


def kokoro_speakers(seed: int) -> list[Speaker]:
    """KOKORO_CANDIDATES Kokoro speakers, each drawn from its own stream (a speaker does not depend on the count)."""
    speakers = []
    for index in range(KOKORO_CANDIDATES):
        rng = np.random.default_rng(_stable_seed(seed, "kokoro", index))
        blend = np.round(rng.dirichlet([KOKORO_BLEND_ALPHA] * len(kokoro.STYLES)), 2)
        speakers.append(Speaker(
            "kokoro", ",".join(f"{weight:g}" for weight in blend), int(rng.choice(KOKORO_PITCHES)),
            round(float(rng.uniform(*KOKORO_SPEEDS)), 3), float(rng.choice(VOCAL_TRACT_WARPS)),
        ))
    return speakers


# --- synthesis ---------------------------------------------------------------------


def _run(cmd: list[str]) -> bytes:
    """A synthesis tool's stdout; a missing tool or a failure is a user-facing error."""
    try:
        result = subprocess.run(cmd, capture_output=True, check=False)
    except FileNotFoundError:
        raise MCUForgeError(
            f"{cmd[0]} not found: install espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k "
            "festvox-us-slt-hts sox (make setup does it)"
        ) from None
    if result.returncode != 0:
        raise MCUForgeError(f"{' '.join(cmd[:4])} ... failed: {result.stderr.decode(errors='replace').strip()[-500:]}")
    return result.stdout


RAW = ["-t", "raw", "-r", str(SAMPLE_RATE), "-e", "signed", "-b", "16", "-c", "1"]


def sox_to_pcm(wav_path: Path, effects: list[str]) -> np.ndarray:
    """Any WAV file as 16 kHz mono int16 through sox (no dither, repeatable), with optional effects."""
    return np.frombuffer(_run(["sox", "-D", "-R", str(wav_path), *RAW, "-", *effects]), np.int16)


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """Float samples, peak-normalized, as a 16-bit mono WAV for sox."""
    import wave

    peak = np.abs(samples).max() or 1.0
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.round(samples * (29000 / peak)).astype("<i2").tobytes())


def synthesize(speaker: Speaker, words: list[str], workdir: Path, seed: int) -> dict[str, np.ndarray]:
    """Each word as spoken by `speaker`: 16 kHz int16 PCM, untrimmed."""
    paths = {word: workdir / f"{i}.wav" for i, word in enumerate(words)}
    effects: list[str] = []
    if speaker.engine == "piper":
        effects = ["pitch", str(speaker.pitch)]
        name, dialect = _voice_and_dialect(speaker)
        rate = voices.sample_rate(name)
        rng = np.random.default_rng(_stable_seed(seed, speaker.name))
        voice = voices.VoiceSession(name, int(rng.integers(2**31)))
        for word, path in paths.items():
            noise_scale, noise_w = rng.uniform(*PIPER_NOISE_SCALES), rng.uniform(*PIPER_NOISE_WS)
            samples = voice.speak(word, noise_scale, noise_w, speaker.speed, _run, dialect)
            _write_wav(path, voices.warp_vocal_tract(samples, speaker.warp, rate), rate)
    elif speaker.engine == "hibari":
        effects = ["pitch", str(speaker.pitch)]
        _, dialect = _voice_and_dialect(speaker)
        rng = np.random.default_rng(_stable_seed(seed, speaker.name))
        for word, path in paths.items():
            samples = hibari_voice.speak(word, speaker.speed, int(rng.integers(2**31)), _run, dialect)
            _write_wav(path, voices.warp_vocal_tract(samples, speaker.warp, hibari_voice.SAMPLE_RATE), hibari_voice.SAMPLE_RATE)
    elif speaker.engine == "kokoro":
        effects = ["pitch", str(speaker.pitch)]
        blend = np.array([float(weight) for weight in speaker.voice.split(",")])
        for word, path in paths.items():
            samples = kokoro.speak(word, blend / blend.sum(), speaker.speed, _run)
            _write_wav(path, voices.warp_vocal_tract(samples, speaker.warp, kokoro.SAMPLE_RATE), kokoro.SAMPLE_RATE)
    elif speaker.engine == "espeak-ng":
        for word, path in paths.items():
            path.write_bytes(_run(["espeak-ng", "-v", speaker.voice, "-p", str(speaker.pitch), "-s", str(speaker.speed), "--stdout", word]))
    else:
        effects = ["pitch", str(speaker.pitch), "tempo", "-s", str(speaker.speed)]
        if speaker.engine == "flite":
            for word, path in paths.items():
                _run(["flite", "-voice", speaker.voice, "-t", word, "-o", str(path)])
        else:
            script = [f"(voice_{speaker.voice})"] + [
                f'(utt.save.wave (utt.synth (Utterance Text "{word}")) "{path}" \'riff)' for word, path in paths.items()
            ]
            (workdir / "say.scm").write_text("\n".join(script) + "\n")
            _run(["festival", "-b", str(workdir / "say.scm")])
    return {word: sox_to_pcm(path, effects) for word, path in paths.items()}


def _trim(pcm: np.ndarray) -> np.ndarray:
    """Drop leading and trailing 10 ms frames more than 40 dB below the loudest one."""
    frames = pcm[: len(pcm) // 160 * 160].astype(np.float64).reshape(-1, 160)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    if len(rms) == 0 or rms.max() == 0:
        return pcm
    active = np.flatnonzero(rms >= rms.max() * 0.01)
    return pcm[active[0] * 160 : (active[-1] + 1) * 160]


def background_noise(rng: np.random.Generator, n: int = CLIP_SAMPLES) -> np.ndarray:
    """Unit-RMS noise of a random kind: white, pink, brown, mains hum, fan or babble-like."""
    kind = rng.integers(6)
    t = np.arange(n) / SAMPLE_RATE
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    if kind == 0:  # white
        noise = rng.normal(size=n)
    elif kind in (1, 2):  # pink (1/f power), brown (1/f^2)
        noise = np.fft.irfft(spectrum / np.maximum(freqs, 20.0) ** (0.5 * kind), n)
    elif kind == 3:  # mains hum with harmonics over faint hiss
        mains = rng.choice([50.0, 60.0])
        noise = sum(rng.uniform(0.1, 1) / h * np.sin(2 * np.pi * mains * h * t + rng.uniform(0, 2 * np.pi)) for h in range(1, 8))
        noise = noise + 0.05 * rng.normal(size=n)
    elif kind == 4:  # fan or engine: low-passed rumble plus a blade tone
        rumble = np.fft.irfft(spectrum * (freqs < rng.uniform(300, 1200)), n)
        tone = rng.uniform(80, 300)
        noise = rumble / (rumble.std() + 1e-9) + 0.5 * np.sin(2 * np.pi * tone * t) + 0.2 * np.sin(4 * np.pi * tone * t)
    else:  # babble-like: speech-band noise under slow syllabic envelopes
        band = np.fft.irfft(spectrum * ((freqs > 200) & (freqs < 3500)), n)
        envelope = np.abs(np.fft.irfft(np.fft.rfft(rng.normal(size=n)) * (freqs < 6.0), n))
        noise = band * envelope
    noise = noise - noise.mean()
    return noise / (noise.std() + 1e-12)


def _augment(word_pcm: np.ndarray, options: KeywordsOptions, rng: np.random.Generator, workdir: Path) -> np.ndarray:
    """One take: sox pitch/tempo/reverb, trim, random level, shift in a 1 s clip, background noise."""
    effects = ["pitch", f"{rng.uniform(-1, 1) * options.pitch_cents:.1f}", "tempo", "-s", f"{1 + rng.uniform(-1, 1) * options.tempo_change:.4f}"]
    if rng.random() < options.reverb_probability:
        effects += ["reverb", f"{rng.uniform(10, 70):.0f}", "50", f"{rng.uniform(10, 100):.0f}"]
    source = workdir / "take.raw"
    source.write_bytes(word_pcm.tobytes())
    speech = _trim(np.frombuffer(_run(["sox", "-D", "-R", *RAW, str(source), *RAW, "-", *effects]), np.int16)).astype(np.float64)
    if len(speech) > CLIP_SAMPLES:
        start = (len(speech) - CLIP_SAMPLES) // 2
        speech = speech[start : start + CLIP_SAMPLES]
    peak = np.abs(speech).max() or 1.0
    speech *= 10 ** (rng.uniform(-30, -3) / 20) * 32767 / peak
    clip = np.zeros(CLIP_SAMPLES)
    shift = int(rng.integers(-options.time_shift_ms, options.time_shift_ms + 1)) * SAMPLE_RATE // 1000
    offset = int(np.clip((CLIP_SAMPLES - len(speech)) // 2 + shift, 0, CLIP_SAMPLES - len(speech)))
    clip[offset : offset + len(speech)] = speech
    return _capture(clip, np.sqrt(np.mean(speech**2)), options, rng)


def _capture(clip: np.ndarray, speech_rms: float, options: KeywordsOptions, rng: np.random.Generator) -> np.ndarray:
    """A placed word (float, one second) as the device records it: room, background noise, microphone, noise floor, ADC."""
    if rng.random() < options.room_probability:
        clip = acoustics.reverberate(clip, rng)
    if rng.random() < options.noise_probability:
        snr = rng.uniform(options.snr_db_min, options.snr_db_max)
        clip = clip + background_noise(rng) * speech_rms / 10 ** (snr / 20)
    through_microphone = rng.random() < options.microphone_probability
    if through_microphone:
        clip = acoustics.microphone(clip, rng)
    clip = clip + acoustics.self_noise(len(clip), rng)
    if through_microphone:
        return acoustics.to_adc(clip, rng)
    return np.clip(np.round(clip), -32768, 32767).astype(np.int16)


def _silence(options: KeywordsOptions, rng: np.random.Generator) -> np.ndarray:
    """A `_silence_` clip: background noise alone, from -75 to -20 dBFS RMS (through a microphone when those are on)."""
    noise = background_noise(rng)
    if rng.random() < options.microphone_probability:
        noise = acoustics.microphone(noise, rng)
        noise = noise / (noise.std() + 1e-12)
    level = 32767 * 10 ** (rng.uniform(-75, -20) / 20)
    return np.clip(np.round(noise * level), -32768, 32767).astype(np.int16)


def _synthesis_options(options: KeywordsOptions) -> dict:
    """The options that shape the audio (not the features, the split or the thread count)."""
    fields = asdict(options)
    for name in (
        "speakers", "natural_share", "neural_share", "neural_accents", "kokoro_share", "hibari_share", "val_share", "test_share", "features", "num_mfcc", "frame_stride_ms",
        "feature_normalization", "workers", "engines", "real_eval_dir", "real_eval_optional", "real_train_dir", "real_train_copies", "feature_mask_share", "extra_unknown_takes",
        "consistency_views",
    ):
        fields.pop(name)
    return fields


def speaker_clips(speaker: Speaker, options: KeywordsOptions, seed: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """All takes of one speaker, `repetitions` per class: int16 clips [n, 16000] and labels [n].

    Cached under cache_dir/keywords/clips keyed by the speaker, the audio options and the seed.
    """
    key = _digest(SYNTHESIS_VERSION, asdict(speaker), _synthesis_options(options), seed)
    return _cached_takes(key, cache_dir, lambda: _speaker_takes(speaker, options, seed))


def _speaker_takes(speaker: Speaker, options: KeywordsOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(_stable_seed(seed, speaker.name))
    unknown = [str(w) for w in rng.choice(options.unknown_words, options.repetitions)]
    clips, labels = [], []
    with tempfile.TemporaryDirectory(prefix="mcuforge-kws-") as tmp:
        workdir = Path(tmp)
        spoken = synthesize(speaker, sorted(set(options.words) | set(unknown)), workdir, seed)
        for label, word in enumerate(options.words, start=2):
            for _ in range(options.repetitions):
                clips.append(_augment(spoken[word], options, rng, workdir))
                labels.append(label)
        for word in unknown:
            clips.append(_augment(spoken[word], options, rng, workdir))
            labels.append(1)
    for _ in range(options.repetitions):
        clips.append(_silence(options, rng))
        labels.append(0)
    return np.stack(clips), np.array(labels, np.int64)


def _cached_takes(key: str, cache_dir: Path, make) -> tuple[np.ndarray, np.ndarray]:
    """Clips and labels kept under cache_dir/keywords/clips/<key>.npz: read back, or made by `make()` and written atomically."""
    path = Path(cache_dir) / "keywords" / "clips" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            return cached["clips"], cached["labels"]
    result = make()
    buffer = io.BytesIO()
    np.savez_compressed(buffer, clips=result[0], labels=result[1])
    write_bytes_atomic(path, buffer.getvalue())
    return result


def extra_unknown_clips(speaker: Speaker, options: KeywordsOptions, seed: int, cache_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """`extra_unknown_takes` more `_unknown_` takes of one training speaker: other words, augmented like the rest.

    Cached apart from speaker_clips (their own seed and key), so asking for more
    other words leaves every speaker's cached takes as they are.
    """
    count = options.extra_unknown_takes
    key = _digest(SYNTHESIS_VERSION, asdict(speaker), _synthesis_options(options), seed, "extra unknown", count)
    return _cached_takes(key, cache_dir, lambda: _extra_unknown_takes(speaker, options, seed))


def _extra_unknown_takes(speaker: Speaker, options: KeywordsOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    count = options.extra_unknown_takes
    rng = np.random.default_rng(_stable_seed(seed, speaker.name, "extra unknown"))
    unknown = [str(w) for w in rng.choice(options.unknown_words, count)]
    with tempfile.TemporaryDirectory(prefix="mcuforge-kws-") as tmp:
        workdir = Path(tmp)
        spoken = synthesize(speaker, sorted(set(unknown)), workdir, int(rng.integers(2**31)))
        return np.stack([_augment(spoken[word], options, rng, workdir) for word in unknown]), np.ones(count, np.int64)


def clip_features(clips: np.ndarray, options: KeywordsOptions) -> np.ndarray:
    """int16 features [n, 49, features] from int16 clips, by the device's extractor and normalization, in `workers` threads
    (the C extractor runs without the GIL; each clip's features do not depend on the others)."""
    def chunk_features(chunk: np.ndarray) -> np.ndarray:
        frames = features.extract(chunk, options.features, options.num_mfcc, features.stride_samples(options.frame_stride_ms))
        return features.normalize(frames, options.feature_normalization)

    chunks = np.array_split(clips, max(1, min(options.workers, len(clips))))
    with ThreadPoolExecutor(max_workers=len(chunks)) as pool:
        return np.concatenate(list(pool.map(chunk_features, chunks)))


def _extractor_digest() -> str:
    return _digest(*[Path(p).read_text() for p in (*features.SOURCES, features.SOURCE_DIR / "kws_features.h")])


def split_clips(options: KeywordsOptions, seed: int, cache_dir: Path, split: str = "test") -> tuple[np.ndarray, np.ndarray]:
    """The raw int16 clips [n, 16000] and labels of one split, in the data set's order (for on-device demos)."""
    speakers = speaker_catalog(options, seed)[split]
    extra = split == "train" and options.extra_unknown_takes > 0

    def takes(speaker: Speaker) -> tuple[np.ndarray, np.ndarray]:
        clips, labels = speaker_clips(speaker, options, seed, cache_dir)
        if not extra:
            return clips, labels
        more_clips, more_labels = extra_unknown_clips(speaker, options, seed, cache_dir)
        return np.concatenate([clips, more_clips]), np.concatenate([labels, more_labels])

    with ThreadPoolExecutor(max_workers=options.workers) as pool:
        results = list(pool.map(takes, speakers))
    return np.concatenate([r[0] for r in results]), np.concatenate([r[1] for r in results])


def train_speaker_ids(options: KeywordsOptions, seed: int, train_samples: int) -> np.ndarray:
    """The speaker of each training sample (an index into the catalog's train speakers), in `load`'s order.

    Every speaker contributes `repetitions` takes per class and `extra_unknown_takes`
    more `_unknown_` ones, one speaker after another; the user's own recordings
    (`real_train_dir`), appended last, are one more speaker.
    """
    speakers = len(speaker_catalog(options, seed)["train"])
    per_speaker = options.repetitions * len(options.class_names) + options.extra_unknown_takes
    ids = np.repeat(np.arange(speakers), per_speaker)
    if train_samples < len(ids):
        raise MCUForgeError(f"{train_samples} keyword training samples for {speakers} speakers of {per_speaker} takes each")
    return np.concatenate([ids, np.full(train_samples - len(ids), speakers)])


def train_view_groups(options: KeywordsOptions, seed: int, labels: np.ndarray) -> np.ndarray:
    """Which training samples are views of one thing (same id), for consistency training; `labels` in `load`'s order.

    A synthetic speaker's takes of one class are one group: its `repetitions` takes of a
    keyword (one synthesis, each take through its own pitch, tempo, room, noise and
    microphone), its other words for `_unknown_`, its noise-only `_silence_` clips. Each
    of the user's own recordings (`real_train_dir`, appended last) is a group with its
    `real_train_copies` copies. With `consistency_views: word` a class's takes are one group
    whoever said them (views of the word in other voices too).
    """
    if options.consistency_views == "word":
        return labels.copy()
    speaker = train_speaker_ids(options, seed, len(labels))
    first_own = speaker.searchsorted(len(speaker_catalog(options, seed)["train"]))
    own_take = (np.arange(len(labels)) - first_own) // options.real_train_copies
    classes = len(options.class_names)
    return np.where(np.arange(len(labels)) < first_own, speaker * classes + labels, speaker * classes + own_take)


def own_recordings(options: KeywordsOptions, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The user's takes from real_train_dir, each as recorded plus real_train_copies - 1 augmented copies.

    A copy is shifted in time, then goes through the same capture chain as synthetic takes
    (room, noise, microphone), so a few takes teach the voice without teaching one room.
    """
    recordings = read_speech_commands(Path(options.real_train_dir), options.class_names, "data.options.real_train_dir")
    rng = np.random.default_rng(_stable_seed(seed, "own recordings"))
    clips, labels = [], []
    for take, label in zip(recordings.clips, recordings.labels):
        clips.append(take)
        labels.append(label)
        for _ in range(options.real_train_copies - 1):
            shift = int(rng.integers(-options.time_shift_ms, options.time_shift_ms + 1)) * SAMPLE_RATE // 1000
            moved = np.roll(take.astype(np.float64), shift)
            clips.append(_capture(moved, np.sqrt(np.mean(moved**2)), options, rng))
            labels.append(label)
    return np.stack(clips), np.array(labels, np.int64)


# SpecAugment-style masks: widest time span (frames of 10 ms) and widest band (a fifth of the feature columns).
MASK_FRAMES = 10
MASK_BAND_SHARE = 0.2


def mask_features(x: np.ndarray, share: float, seed: int) -> np.ndarray:
    """Training features [n, frames, columns] with `share` of the clips masked (a copy).

    Each chosen clip gets one span of up to MASK_FRAMES frames and one band of up to a
    fifth of the columns set to the training set's mean of each column (SpecAugment,
    Park et al. 2019, on the device's own fixed-point features): the model learns not
    to lean on any one moment or band, as real rooms and microphones blot some out.
    """
    if share == 0.0 or len(x) == 0:
        return x
    rng = np.random.default_rng(_stable_seed(seed, "feature masks"))
    mean = np.round(x.reshape(-1, x.shape[2]).mean(axis=0)).astype(x.dtype)
    masked = x.copy()
    widest_band = max(1, round(x.shape[2] * MASK_BAND_SHARE))
    for i in np.flatnonzero(rng.random(len(x)) < share):
        frames, band = int(rng.integers(1, MASK_FRAMES + 1)), int(rng.integers(1, widest_band + 1))
        start = int(rng.integers(0, x.shape[1] - frames + 1))
        masked[i, start : start + frames] = mean
        low = int(rng.integers(0, x.shape[2] - band + 1))
        masked[i, :, low : low + band] = mean[low : low + band]
    return masked


def to_float(features_int16: np.ndarray) -> np.ndarray:
    return (features_int16.astype(np.float32) * np.float32(features.SCALE))[..., np.newaxis]


def load(options: KeywordsOptions, seed: int, cache_dir: Path) -> Dataset:
    """Synthesize (or reuse cached) clips, extract features, split by speaker."""
    catalog = speaker_catalog(options, seed)
    shaping = {
        k: v
        for k, v in asdict(options).items()
        if k not in ("real_eval_dir", "real_eval_optional", "real_train_dir", "real_train_copies", "workers", "feature_mask_share", "consistency_views")
    }
    split_names = {split: [s.name for s in speakers] for split, speakers in catalog.items()}
    key = _digest(SYNTHESIS_VERSION, shaping, seed, split_names, _extractor_digest())
    path = Path(cache_dir) / "keywords" / "features" / f"{key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            arrays = {name: cached[name] for name in cached.files}
    else:
        arrays = {}
        for split in catalog:
            clips, arrays[f"y_{split}"] = split_clips(options, seed, cache_dir, split)
            arrays[f"x_{split}"] = clip_features(clips, options)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        write_bytes_atomic(path, buffer.getvalue())
    extra_eval = {}
    if options.real_eval_dir is not None and (Path(options.real_eval_dir).is_dir() or not options.real_eval_optional):
        recordings = read_speech_commands(Path(options.real_eval_dir), options.class_names, "data.options.real_eval_dir")
        extra_eval["real"] = (to_float(clip_features(recordings.clips, options)), recordings.labels)
    x_train, y_train = arrays["x_train"], arrays["y_train"]
    own_takes = 0
    if options.real_train_dir is not None:
        own_clips, own_labels = own_recordings(options, seed)
        own_takes = len(own_labels) // options.real_train_copies
        x_train = np.concatenate([x_train, clip_features(own_clips, options)])
        y_train = np.concatenate([y_train, own_labels])
    return Dataset(
        name="keywords",
        task=CLASSIFICATION,
        x_train=to_float(mask_features(x_train, options.feature_mask_share, seed)),
        y_train=y_train,
        x_val=to_float(arrays["x_val"]),
        y_val=arrays["y_val"],
        x_test=to_float(arrays["x_test"]),
        y_test=arrays["y_test"],
        class_names=options.class_names,
        extra_eval=extra_eval,
        train_groups=train_view_groups(options, seed, y_train),
        notes={
            "features": options.features if options.features == "logmel" else f"mfcc{options.num_mfcc}",
            "feature_scale": features.SCALE,
            "speakers": {split: len(s) for split, s in catalog.items()},
            "test_speakers": [s.name for s in catalog["test"]],
            "val_speakers": [s.name for s in catalog["val"]],
            "own_recordings": own_takes,
        },
    )
