"""Injected device faults: a sampled client drops out before reporting, or answers late.

Each client's fate in a round is drawn from (seed, round, client), so a run
with the same seed fails the same clients. A dropped client either raises (its
update is lost, the process lives on) or, with `crash`, ends its own process
the way a device losing power does (Ray loses the actor; Flower starts another).
"""

from __future__ import annotations

import os
import time

import numpy as np

OK, DROP, STRAGGLE = "ok", "drop", "straggle"


class ClientDropout(RuntimeError):
    """A client that fails on purpose before reporting its update."""


def fate(seed: int, server_round: int, client: int, dropout: float, stragglers: float) -> str:
    """What happens to `client` in `server_round`: OK, DROP or STRAGGLE."""
    draw = np.random.default_rng([seed, server_round, client, 0xFA17]).random()
    if draw < dropout:
        return DROP
    if draw < dropout + stragglers:
        return STRAGGLE
    return OK


def act(what: str, client: int, server_round: int, straggler_seconds: float, crash: bool) -> None:
    """Carry out a fate inside the client, before it trains."""
    if what == DROP:
        if crash:
            os._exit(17)
        raise ClientDropout(f"client {client} dropped out in round {server_round} (injected)")
    if what == STRAGGLE:
        time.sleep(straggler_seconds)
