"""`mcuforge demo kws|digits|gestures|vibration`: on-device inference demos in QEMU (firmware/demos)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

_TARGET = typer.Option("qemu-m4", "--target", "-t", help="emulated board (firmware/boards/qemu-*.yaml)")
_OUT = typer.Option(Path("build") / "demos", help="where the demo images are written")
_MODEL = typer.Option(None, help="int8 .tflite [default: build/<spec name>/deploy/model_int8.tflite, written by `mcuforge run SPEC`]")


def _spec_and_model(spec_path: Path, model: Optional[Path]):
    from mcuforge.layout import INT8_MODEL_FILE
    from mcuforge.spec import load_spec
    from mcuforge.train.trainer import check_spec

    spec = load_spec(spec_path)
    check_spec(spec)
    return spec, model or spec.layout().deploy / INT8_MODEL_FILE


def register(app: typer.Typer) -> None:
    demo = typer.Typer(help="On-device inference demos, run in QEMU.", no_args_is_help=True)
    app.add_typer(demo, name="demo")

    @demo.command("kws")
    def kws_command(
        spec: Path = typer.Option(Path("specs/keywords.yaml"), help="the keywords spec the model was trained with"),
        model: Optional[Path] = _MODEL,
        wav: Optional[Path] = typer.Option(None, help="a WAV file to listen to (any rate; converted to 16 kHz mono)"),
        say: Optional[str] = typer.Option(None, help='words spoken on the spot by espeak-ng, e.g. "yes no up"'),
        voice: str = typer.Option("en-us", help="espeak-ng voice for --say"),
        target: str = _TARGET,
        out: Path = _OUT,
    ) -> None:
        """Keyword spotting: audio in, features and classification on the device, a timed transcript out."""
        from mcuforge.errors import MCUForgeError
        from mcuforge import features
        from mcuforge.firmware import demos

        if (wav is None) == (say is None):
            raise MCUForgeError("demo kws: pass exactly one of --wav FILE or --say \"yes no up\"")
        spec_obj, model_path = _spec_and_model(spec, model)
        options = demos.spec_options(spec_obj, "keywords")
        audio = demos.read_audio(wav) if wav is not None else demos.say(say, voice=voice)
        result = demos.run_kws(
            model_path, audio, options.class_names, options.features, options.num_mfcc, options.feature_normalization,
            stride=features.stride_samples(options.frame_stride_ms), target=target, out_dir=out,
        )
        typer.echo(result.transcript())

    def _classifier(spec: Path, model: Optional[Path], count: Optional[int], target: str, out: Path) -> None:
        from mcuforge.firmware import demos

        spec_obj, model_path = _spec_and_model(spec, model)
        typer.echo(demos.run_test_split(spec_obj, model_path, count, target, out).format())

    _COUNT = typer.Option(None, help="test samples to classify [default: the whole test split]")

    @demo.command("digits")
    def digits_command(spec: Path = typer.Option(Path("specs/digits.yaml")), model: Optional[Path] = _MODEL, count: Optional[int] = _COUNT, target: str = _TARGET, out: Path = _OUT) -> None:
        """Digits: test-split images classified on the device; a confusion matrix."""
        _classifier(spec, model, count, target, out)

    @demo.command("gestures")
    def gestures_command(spec: Path = typer.Option(Path("specs/gestures.yaml")), model: Optional[Path] = _MODEL, count: Optional[int] = _COUNT, target: str = _TARGET, out: Path = _OUT) -> None:
        """Gestures (magic-wand strokes): test-split samples classified on the device; a confusion matrix."""
        _classifier(spec, model, count, target, out)

    @demo.command("vibration")
    def vibration_command(
        spec: Path = typer.Option(Path("specs/vibration.yaml")),
        model: Optional[Path] = _MODEL,
        fault: str = typer.Option("bearing_outer", help="imbalance, misalignment, bearing_outer, bearing_inner or bearing_ball"),
        seconds: float = typer.Option(20.0, help="length of the recording; the fault starts halfway"),
        seed: int = typer.Option(0, help="which machine and recording"),
        target: str = _TARGET,
        out: Path = _OUT,
    ) -> None:
        """Predictive maintenance: features, anomaly score and alarm on the device, window by window."""
        from mcuforge.firmware import demos
        from mcuforge.train.trainer import load_dataset

        spec_obj, model_path = _spec_and_model(spec, model)
        options = demos.spec_options(spec_obj, "vibration")
        normal = load_dataset(spec_obj).x_val
        threshold = demos.calibrate_threshold(demos.read_model(model_path), demos.integer_vibration_features(normal))
        result = demos.run_vibration(model_path, options, threshold, seed, seconds, fault, target=target, out_dir=out)
        typer.echo(result.transcript())
