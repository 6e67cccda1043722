"""`mcuforge federate`: the spec's model trained across a simulated fleet with Flower."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer


def register(app: typer.Typer) -> None:
    @app.command("federate")
    def federate_command(
        spec: Path = typer.Argument(..., help="pipeline spec (YAML); without a federated: section, its defaults"),
        root: Path = typer.Option(Path("build"), help="build root: Flower's home and Ray's session directory go under it"),
        out: Optional[Path] = typer.Option(None, help="output directory [default: build/<name>/federate]"),
        deployment: bool = typer.Option(
            False, "--deployment", help="run through a local SuperLink and one SuperNode per client (processes on 127.0.0.1) instead of the simulation"
        ),
        superlink: Optional[str] = typer.Option(
            None, help="with --deployment: submit to this running SuperLink (host:port; run on its machine) instead of starting one"
        ),
        root_certificates: Optional[Path] = typer.Option(
            None, help="with --deployment: the CA certificate of the SuperLink's TLS (else insecure)"
        ),
        ssl_certfile: Optional[Path] = typer.Option(None, help="with --deployment: the local SuperLink's TLS certificate (for 127.0.0.1, signed by the CA)"),
        ssl_keyfile: Optional[Path] = typer.Option(None, help="with --deployment: the local SuperLink's TLS private key"),
    ) -> None:
        """Train across the spec's clients (Flower simulation, or SuperLink and SuperNodes); write model, metrics.json, rounds.json and federated.png."""
        from mcuforge.errors import MCUForgeError
        from mcuforge.pipeline import int8_test_accuracy
        from mcuforge.progress import Progress
        from mcuforge.spec import load_spec
        from mcuforge.train.federated.run import federate, with_federated

        loaded = with_federated(load_spec(spec))
        directory = out or loaded.layout(root).stage("federate")
        where = None
        tls_files = {"--root-certificates": root_certificates, "--ssl-certfile": ssl_certfile, "--ssl-keyfile": ssl_keyfile}
        for flag, path in tls_files.items():
            if path is not None and not path.is_file():
                raise MCUForgeError(f"{flag}: no file {path}; pass a PEM file")
        if deployment:
            from mcuforge.train.federated.deployment import Deployment

            where = Deployment(superlink, root_certificates, certificate=ssl_certfile, key=ssl_keyfile)
            where.local_tls()  # an incomplete set of TLS files is refused before anything runs
        elif superlink or any(tls_files.values()):
            raise MCUForgeError(
                "--superlink and --root-certificates apply to --deployment (so do --ssl-certfile and --ssl-keyfile): add --deployment"
            )
        result = federate(loaded, directory, int8_test_accuracy, root, progress=Progress.to(), deployment=where)
        summary, metric = result.metrics["federated"], result.metric_name
        typer.echo(json.dumps({
            "clients": summary["clients"],
            "rounds": len(summary["rounds"]),
            f"float_test_{metric}": result.metrics["test"][metric],
            f"int8_test_{metric}_tflm": summary[f"int8_test_{metric}"],
            "uploaded_bytes": summary["uploaded_bytes"],
            "wall_seconds": summary["wall_seconds"],
        }, indent=2))
        typer.echo(f"wrote {directory}")
