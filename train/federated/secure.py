"""Secure aggregation with Flower's SecAgg+: the server learns only the sum of the clients' weights.

Each sampled client masks its (sample-count weighted) weights with pairwise
masks that cancel in the sum plus a private mask, and secret-shares the mask
seeds with `shares - 1` neighbours; the server unmasks only the sum, and
recovers the masks of clients that dropped mid-round from the shares of at
least `threshold` neighbours. Fewer answering neighbours and the round does not
aggregate (the model stays as it was); the strategy's round record says so.

In flwr 1.42 SecAgg+ runs through the legacy workflow API: the ServerApp runs
`DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))` over a `LegacyContext`
holding the fleet's strategy, and every ClientApp carries `secaggplus_mod`.
(A client with the mod talking to a server without the workflow fails every
fit while the run still exits 0, so rounds are checked from the strategy's
records, never from the exit status.)

Masking works on integers: a client clips each weighted value to
[-clipping_range, clipping_range] and rounds it stochastically to one of
QUANTIZATION_RANGE levels. A weight beyond the clipping range could be clipped
silently, so the client refuses to send one instead; `aggregation_error_bound`
states how far the dequantized mean can be from the exact FedAvg mean.
"""

from __future__ import annotations

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.spec import Spec

QUANTIZATION_RANGE = 1 << 22  # SecAgg+ integer levels per value (Flower's default), masked modulo 2**32
_FIT_PARAMETERS = "fitres.parameters"  # where a legacy FitRes keeps its weights in the reply message


def check_secure(spec: Spec, clients: int) -> None:
    """Reject a secure_aggregation section the protocol cannot run, naming the field and the fix."""
    settings = spec.federated
    secure = settings.secure_aggregation
    if secure is None:
        return
    where = "federated.secure_aggregation"
    if secure.threshold >= secure.shares:
        raise MCUForgeError(f"{where}.threshold: expected less than shares ({secure.shares}). Received: {secure.threshold}")
    sampled = max(1, round(settings.fraction * clients))
    if secure.shares > sampled:
        raise MCUForgeError(
            f"{where}.shares: expected at most the {sampled} clients sampled per round "
            f"(fraction {settings.fraction} of {clients}). Received: {secure.shares}; lower shares or raise federated.fraction"
        )
    if settings.compression != "none":
        raise MCUForgeError(
            f"federated.compression: SecAgg+ masks plain float weights. Received: {settings.compression!r}; "
            "set compression: none or drop secure_aggregation"
        )


def aggregation_error_bound(counts: list[int], max_weight: float, clipping_range: float, peak: float) -> float:
    """Largest |SecAgg+ mean - exact sample-weighted mean| of any value, for clients with `counts` samples.

    A client multiplies its weights by ratio_i = round(n_i / max_weight * Q) / Q and
    rounds each product stochastically to a step of 2 * clipping_range / Q (error
    below one step); the server divides the summed values by the summed ratios:
    rounding <= k * step / sum(ratio). The rounded ratios differ from the exact
    ones by at most 1 / (2Q) each, which moves a mean of values within `peak` of
    zero by at most k * peak / (Q * sum(ratio)). Both models are float32 in the
    end: two float32 roundings of a value within `peak`.
    """
    k = len(counts)
    ratios = [round(n / max_weight * QUANTIZATION_RANGE) / QUANTIZATION_RANGE for n in counts]
    step = 2 * clipping_range / QUANTIZATION_RANGE
    rounding = k * step / sum(ratios)
    weighting = k * peak / (QUANTIZATION_RANGE * sum(ratios))
    return rounding + weighting + 2 * float(np.finfo(np.float32).eps) * peak


def server_workflow(spec: Spec, max_weight: int):
    """The ServerApp's workflow over a LegacyContext: SecAgg+ fit rounds when the spec asks for them.

    `max_weight` is the largest client's sample count: every client's ratio is
    then at most 1 (no overflow) and as large as it can be (finest quantization).
    """
    from flwr.server.workflow import DefaultWorkflow, SecAggPlusWorkflow

    secure = spec.federated.secure_aggregation
    if secure is None:
        return DefaultWorkflow()
    return DefaultWorkflow(
        fit_workflow=SecAggPlusWorkflow(
            num_shares=secure.shares,
            reconstruction_threshold=secure.threshold,
            max_weight=float(max_weight),
            clipping_range=secure.clipping_range,
            quantization_range=QUANTIZATION_RANGE,
            timeout=spec.federated.round_timeout,
        )
    )


def _refuse_clipping(clipping_range: float):
    """A client mod that fails the fit when a weight lies outside the SecAgg+ clipping range."""

    def mod(msg, context, call_next):
        reply = call_next(msg, context)
        if reply.has_error() or _FIT_PARAMETERS not in reply.content.array_records:
            return reply
        weights = reply.content.array_records[_FIT_PARAMETERS].to_numpy_ndarrays()
        peak = max(float(np.max(np.abs(w))) for w in weights if w.size)
        if peak > clipping_range:
            raise MCUForgeError(
                f"a model weight of magnitude {peak:.3g} exceeds federated.secure_aggregation.clipping_range="
                f"{clipping_range}: raise clipping_range above it"
            )
        return reply

    return mod


def client_mods(spec: Spec) -> list:
    """The ClientApp mods for `spec`: SecAgg+ (outermost) and the clipping-range check, or none."""
    from flwr.client.mod import secaggplus_mod

    secure = spec.federated.secure_aggregation
    if secure is None:
        return []
    return [secaggplus_mod, _refuse_clipping(secure.clipping_range)]
