"""Secure aggregation with Flower's SecAgg+: the server learns only the sum of the clients' updates.

Each sampled client masks its (sample-count weighted) update with pairwise
masks that cancel in the sum plus a private mask, and secret-shares the mask
seeds with `shares - 1` neighbours; the server unmasks only the sum, and
recovers the masks of clients that dropped mid-round from the shares of at
least `threshold` neighbours. Fewer answering neighbours and the round does not
aggregate (the model stays as it was); the strategy's round record says so.

In flwr 1.42 SecAgg+ runs through the legacy workflow API: the ServerApp runs
`DefaultWorkflow(fit_workflow=SecAggPlusWorkflow(...))` over a `LegacyContext`
holding the fleet's strategy (here a subclass that hands a halted round's client
failures to the strategy), and every ClientApp carries `secaggplus_mod`.
(A client with the mod talking to a server without the workflow fails every
fit while the run still exits 0, so rounds are checked from the strategy's
records, never from the exit status.)

Masking works on integers: a client clips each weighted value to
[-clipping_range, clipping_range] and rounds it stochastically to one of
QUANTIZATION_RANGE levels. So that one clipping range fits every tensor, a
client sends its update (its weights minus the round's global ones, second
moments in the variances' slots) with each tensor scaled by 2^-e, e announced
in the round's config by the server (`update_scales`) from public information
only: the global model's largest magnitude in that tensor (at least 1), and for
batch-norm statistics no round has aggregated yet a fixed wide range (the
initial statistics say nothing about the data). The server multiplies the
unmasked mean back by 2^e (`unscale_update`: powers of two, exact) and adds it
to the global weights; it still learns only the sum. A value beyond the
clipping range after scaling could be clipped silently, so the client refuses
to send it instead, and its refusal comes back as its failure reply, which the
round's record names (on the simulation and the deployment paths alike);
`aggregation_error_bound` states how far the dequantized mean can be from the
exact FedAvg mean.
"""

from __future__ import annotations

import numpy as np

from mcuforge.errors import MCUForgeError
from mcuforge.spec import Spec

QUANTIZATION_RANGE = 1 << 22  # SecAgg+ integer levels per value (Flower's default), masked modulo 2**32
_FIT_PARAMETERS = "fitres.parameters"  # where a legacy FitRes keeps its weights in the reply message
SCALES_CONFIG = "secure_scale_exponents"  # the round's FitIns config entry: each tensor's e (int8 bytes)
# Batch-norm statistics before any round aggregated them: the initial ones (mean 0, variance 1) say nothing
# about the data's scale, so they get 2^12 (a keywords model's first second moment reaches about 2,350).
UNSEEN_STATISTICS_EXPONENT = 12


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


def update_scales(reference: list[np.ndarray], statistics: list[bool], statistics_seen: bool) -> dict[str, bytes]:
    """The round's config entry: each tensor's scale exponent e (clients send update * 2^-e).

    2^e is the smallest power of two at or above the tensor's largest magnitude in `reference`
    (the global weights, second moments in the variances' slots: what the updates are taken against), at least 1: an update may then
    reach clipping_range times the tensor's own size. `statistics` marks the
    batch-norm statistics; until `statistics_seen` (a round aggregated them) they
    get at least 2^UNSEEN_STATISTICS_EXPONENT. Public information only.
    """
    exponents = []
    for tensor, statistic in zip(reference, statistics):
        peak = max(float(np.max(np.abs(tensor))) if tensor.size else 0.0, 1.0)
        mantissa, exponent = np.frexp(peak)  # peak = mantissa * 2^exponent, mantissa in [0.5, 1)
        exponent = int(exponent) - (mantissa == 0.5)  # the smallest 2^exponent >= peak
        exponents.append(max(exponent, UNSEEN_STATISTICS_EXPONENT) if statistic and not statistics_seen else exponent)
    return {SCALES_CONFIG: np.asarray(exponents, np.int8).tobytes()}


def _exponents(config: dict) -> np.ndarray:
    return np.frombuffer(config[SCALES_CONFIG], np.int8).astype(np.int32)


def scale_update(update: list[np.ndarray], config: dict) -> list[np.ndarray]:
    """A client's update scaled by the round's announced powers of two (exact in float32), as it goes into SecAgg+."""
    return [np.ldexp(u, -e).astype(np.float32) for u, e in zip(update, _exponents(config))]


def unscale_update(tensors: list[np.ndarray], config: dict) -> list[np.ndarray]:
    """The unmasked (scaled) mean update back in the weights' units: scale_update's inverse."""
    return [np.ldexp(np.asarray(t, np.float64), e).astype(np.float32) for t, e in zip(tensors, _exponents(config))]


def aggregation_error_bound(counts: list[int], max_weight: float, clipping_range: float, peak: float) -> float:
    """Largest |SecAgg+ mean - exact sample-weighted mean| of any value, for clients with `counts` samples.

    A client multiplies its (scaled) update by ratio_i = round(n_i / max_weight * Q) / Q and
    rounds each product stochastically to a step of 2 * clipping_range / Q (error
    below one step); the server divides the summed values by the summed ratios:
    rounding <= k * step / sum(ratio). The rounded ratios differ from the exact
    ones by at most 1 / (2Q) each, which moves a mean of values within `peak` of
    zero by at most k * peak / (Q * sum(ratio)). Both models are float32 in the
    end: two float32 roundings of a value within `peak`. For a tensor sent scaled
    by 2^-e, pass clipping_range * 2^e (and `peak`, the weights' and updates' largest
    magnitude, in the weights' units).
    """
    k = len(counts)
    ratios = [round(n / max_weight * QUANTIZATION_RANGE) / QUANTIZATION_RANGE for n in counts]
    step = 2 * clipping_range / QUANTIZATION_RANGE
    rounding = k * step / sum(ratios)
    weighting = k * peak / (QUANTIZATION_RANGE * sum(ratios))
    return rounding + weighting + 2 * float(np.finfo(np.float32).eps) * peak


def _halted(context, state) -> bool:
    """A SecAgg+ round stopped (too few answers to go on): hand the clients' failures to the strategy, whose
    round record then names them (flwr's workflow only logs them and never calls aggregate_fit)."""
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, Key

    current_round = int(context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND])
    context.strategy.aggregate_fit(current_round, [], state.failures)
    return False


def _recording_workflow(**settings):
    """flwr's SecAggPlusWorkflow whose halted rounds still reach the strategy (_halted)."""
    from flwr.server.workflow import SecAggPlusWorkflow

    class RecordingSecAggPlus(SecAggPlusWorkflow):
        def setup_stage(self, grid, context, state) -> bool:
            return super().setup_stage(grid, context, state) or _halted(context, state)

        def share_keys_stage(self, grid, context, state) -> bool:
            return super().share_keys_stage(grid, context, state) or _halted(context, state)

        def collect_masked_vectors_stage(self, grid, context, state) -> bool:
            return super().collect_masked_vectors_stage(grid, context, state) or _halted(context, state)

        def unmask_stage(self, grid, context, state) -> bool:
            return super().unmask_stage(grid, context, state) or _halted(context, state)

    return RecordingSecAggPlus(**settings)


def server_workflow(spec: Spec, max_weight: int):
    """The ServerApp's workflow over a LegacyContext: SecAgg+ fit rounds when the spec asks for them.

    `max_weight` is the largest client's sample count: every client's ratio is
    then at most 1 (no overflow) and as large as it can be (finest quantization).
    """
    from flwr.server.workflow import DefaultWorkflow

    secure = spec.federated.secure_aggregation
    if secure is None:
        return DefaultWorkflow()
    return DefaultWorkflow(
        fit_workflow=_recording_workflow(
            num_shares=secure.shares,
            reconstruction_threshold=secure.threshold,
            max_weight=float(max_weight),
            clipping_range=secure.clipping_range,
            quantization_range=QUANTIZATION_RANGE,
            timeout=spec.federated.round_timeout,
        )
    )


def _refuse_clipping(clipping_range: float):
    """A client mod that fails the fit when a (scaled) update value lies outside the SecAgg+ clipping range."""

    def mod(msg, context, call_next):
        reply = call_next(msg, context)
        if reply.has_error() or _FIT_PARAMETERS not in reply.content.array_records:
            return reply
        weights = reply.content.array_records[_FIT_PARAMETERS].to_numpy_ndarrays()
        peak = max(float(np.max(np.abs(w))) for w in weights if w.size)
        if peak > clipping_range:
            raise MCUForgeError(
                f"a model update of magnitude {peak:.3g} (scaled to its tensor's size) exceeds "
                f"federated.secure_aggregation.clipping_range={clipping_range}: raise clipping_range above it"
            )
        return reply

    return mod


def _reply_refusals(msg, context, call_next):
    """Our own errors inside SecAgg+ as the client's failure reply, its reason the one-line message itself:
    the same on every path (simulation or SuperNode), where the server's round record picks it up."""
    from flwr.common import Error, Message
    from flwr.common.constant import ErrorCode

    try:
        return call_next(msg, context)
    except MCUForgeError as refusal:
        return Message(Error(code=ErrorCode.CLIENT_APP_RAISED_EXCEPTION, reason=str(refusal)), reply_to=msg)


def client_mods(spec: Spec) -> list:
    """The ClientApp mods for `spec`: refusals as replies (outermost), SecAgg+ and the clipping-range check, or none."""
    from flwr.client.mod import secaggplus_mod

    secure = spec.federated.secure_aggregation
    if secure is None:
        return []
    return [_reply_refusals, secaggplus_mod, _refuse_clipping(secure.clipping_range)]
