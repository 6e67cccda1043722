"""The federated run's figure: server-side test score (accuracy or AUC) and uploaded bytes per round."""

from __future__ import annotations

from pathlib import Path


def plot_rounds(rounds: list[dict], path: Path, metric: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    numbers = [r["round"] for r in rounds]
    fig, (accuracy, uplink) = plt.subplots(1, 2, figsize=(10, 3.5))
    accuracy.plot(numbers, [r["test_accuracy"] for r in rounds], marker="o")
    accuracy.set_xlabel("round")
    accuracy.set_ylabel(f"test {metric} (server, float)")
    uplink.bar(numbers, [sum(r["uploaded_bytes"] or []) / 1024 for r in rounds])
    uplink.set_xlabel("round")
    uplink.set_ylabel("uploaded KiB (all clients)")
    for ax in (accuracy, uplink):
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
