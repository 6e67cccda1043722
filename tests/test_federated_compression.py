"""Compressed client updates: what they decode to, error feedback, and the bytes a client uploads."""

import numpy as np
import pytest
from flwr.common import Code, FitRes, Parameters, Status, ndarrays_to_parameters

from mcuforge.train.federated import compression
from mcuforge.train.federated.strategy import uploaded_bytes

SHAPES = [(3, 3, 1, 16), (16,), (3, 3, 16, 32), (32,), (128, 64), (64,), (64, 10), (10,)]


def random_weights(seed, scale=1.0):
    rng = np.random.default_rng(seed)
    return [(rng.normal(0, scale, shape)).astype(np.float32) for shape in SHAPES]


def fit_res(parameters):
    return FitRes(Status(Code.OK, "ok"), parameters, 100, {"loss": 0.5, "client": 3})


def test_int8_update_decodes_within_half_a_step():
    delta = random_weights(0, scale=0.01)
    tensors, residual = compression.encode_update(delta, "int8", 0.1, None, [False] * len(SHAPES))
    decoded = compression.decode_update(tensors, compression.INT8, [np.zeros(s, np.float32) for s in SHAPES])
    assert residual is None
    for d, got in zip(delta, decoded):
        step = np.abs(d).max() / 127
        assert got.shape == d.shape and np.abs(got - d).max() <= step / 2 + 1e-9


def test_topk_keeps_the_largest_values_and_error_feedback_loses_nothing():
    zeros = [np.zeros(s, np.float32) for s in SHAPES]
    deltas = [random_weights(seed, scale=0.01) for seed in range(5)]
    residual, sent_total = None, [np.zeros(s) for s in SHAPES]
    for delta in deltas:
        tensors, residual = compression.encode_update(delta, "topk", 0.1, residual, [False] * len(SHAPES))
        sent = compression.decode_update(tensors, compression.TOPK, zeros)
        for total, s in zip(sent_total, sent):
            total += s
    kept = np.flatnonzero(sent[6])  # the last round's (64, 10) tensor
    assert len(kept) == 64  # 10 % of 640
    corrected = (residual[6] + sent[6]).ravel()  # the update plus the old residual: what top-k chose from
    assert np.abs(corrected[kept]).min() >= np.abs(np.delete(corrected, kept)).max() - 1e-7
    # Everything the client ever computed reached the server or waits in its residual.
    for total, r, *rounds in zip(sent_total, residual, *deltas):
        np.testing.assert_allclose(total + r, np.sum(rounds, axis=0), atol=1e-6)


def test_uploaded_bytes_follow_the_array_sizes():
    weights = random_weights(1)
    values = sum(w.size for w in weights)
    tensors = len(weights)
    plain = uploaded_bytes(fit_res(ndarrays_to_parameters(weights)))
    encoded, _ = compression.encode_update(random_weights(2, 0.01), "int8", 0.1, None, [False] * len(SHAPES))
    int8 = uploaded_bytes(fit_res(Parameters(encoded, compression.INT8)))
    encoded, _ = compression.encode_update(random_weights(2, 0.01), "topk", 0.1, None, [False] * len(SHAPES))
    topk = uploaded_bytes(fit_res(Parameters(encoded, compression.TOPK)))
    # float32: 4 bytes a value plus each array's .npy header (128 bytes) and record framing.
    assert 4 * values + 128 * tensors <= plain <= 4 * values + 128 * tensors + 100 * tensors + 300
    # int8: 1 byte a value plus an encoding byte and a float32 scale per tensor, and the same framing.
    assert values + 5 * tensors <= int8 <= values + 5 * tensors + 100 * tensors + 300
    # top-k at 10 %: per kept value a uint16 index and an int8 value, plus an encoding byte, a count and a scale per tensor.
    kept = sum(max(1, round(0.1 * w.size)) for w in weights)
    assert 3 * kept + 9 * tensors <= topk <= 3 * kept + 9 * tensors + 100 * tensors + 300
    assert plain / int8 > 3.5 and plain / topk > 8


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="no delta encoding"):
        compression.encode_update(random_weights(0), "none", 0.1, None, [False] * len(SHAPES))


def test_batch_norm_statistics_travel_exactly():
    delta = random_weights(3, scale=0.01)
    exact = [i == 1 for i in range(len(SHAPES))]  # say tensor 1 is a moving variance
    zeros = [np.zeros(s, np.float32) for s in SHAPES]
    for method, tensor_type in (("int8", compression.INT8), ("topk", compression.TOPK)):
        tensors, residual = compression.encode_update(delta, method, 0.1, None, exact)
        decoded = compression.decode_update(tensors, tensor_type, zeros)
        np.testing.assert_array_equal(decoded[1], delta[1])
        assert len(tensors[1]) == 1 + 4 * delta[1].size
        assert residual is None or not residual[1].any()


def test_int4_rounds_without_bias_and_packs_two_values_a_byte():
    """Stochastic rounding: each value decodes to one of its two neighbouring 4-bit steps, and averaged over
    many independent roundings to the value itself (np.mean, an independent estimate of the expectation)."""
    rng = np.random.default_rng(4)
    values = rng.normal(0, 0.01, 301).astype(np.float32)  # odd count: the last byte is half used
    step = np.abs(values).max() / 7 * (1 + 2**-7)  # the scale: a bfloat16 at most one of its steps above peak / 7
    draws = []
    for seed in range(400):
        (packed,), residual = compression.encode_update([values], "int4", 0.1, None, [False], np.random.default_rng(seed))
        assert residual is None and len(packed) == 2 + 151  # a bfloat16 scale, then two values a byte
        (decoded,) = compression.decode_update([packed], compression.INT4, [np.zeros(301, np.float32)], [False])
        assert np.all(np.abs(decoded - values) < step * (1 + 1e-6))
        draws.append(decoded)
    # The mean of 400 draws lies within 4 standard errors (step / 2 / sqrt(400) at most) of the value.
    assert np.abs(np.mean(draws, axis=0) - values).max() < 4 * step / 2 / 20


def test_int4_sends_one_tensor_with_statistics_as_int8():
    delta = random_weights(5, scale=0.01)
    exact = [i % 2 == 1 for i in range(len(SHAPES))]
    (packed,), _ = compression.encode_update(delta, "int4", 0.1, None, exact, np.random.default_rng(0))
    sizes = [int(np.prod(s)) for s in SHAPES]
    assert len(packed) == sum(2 + (n if e else (n + 1) // 2) for n, e in zip(sizes, exact))
    decoded = compression.decode_update([packed], compression.INT4, [np.zeros(s, np.float32) for s in SHAPES], exact)
    for d, got, e in zip(delta, decoded, exact):
        assert got.shape == d.shape
        if e:  # int8 to nearest: half a step
            assert np.abs(got - d).max() <= np.abs(d).max() / 254 * (1 + 2**-7)
        else:  # 4-bit stochastic: one step, in the rotated domain for tensors of whole 64-value blocks
            rotated, sent = compression.rotate(d.ravel().astype(np.float64)), compression.rotate(got.ravel().astype(np.float64))
            assert (d.size % 64 == 0) == (not np.array_equal(rotated, d.ravel()))
            assert np.abs(sent - rotated).max() <= np.abs(rotated).max() / 7 * (1 + 2**-7)
    with pytest.raises(ValueError, match="does not fit"):
        compression.decode_update([packed + b"\0"], compression.INT4, [np.zeros(s, np.float32) for s in SHAPES], exact)
    # Uploaded: the 8 tensors' bytes once, with one array's framing: under an eighth of the float32 upload.
    plain = uploaded_bytes(fit_res(ndarrays_to_parameters(random_weights(1))))
    int4 = uploaded_bytes(fit_res(Parameters([packed], compression.INT4)))
    assert len(packed) <= int4 <= len(packed) + 300 and plain / int4 > 7


def test_rotation_is_orthonormal_and_spreads_a_spike():
    rng = np.random.default_rng(6)
    x = rng.normal(size=640)
    rotated = compression.rotate(x)
    np.testing.assert_allclose(np.linalg.norm(rotated), np.linalg.norm(x), rtol=1e-12)
    np.testing.assert_allclose(compression.unrotate(rotated), x, atol=1e-12)
    spike = np.zeros(640)
    spike[70] = 1.0  # in the second block: spread evenly over that block, nothing elsewhere
    spread = compression.rotate(spike)
    np.testing.assert_allclose(np.abs(spread[64:128]), 1 / 8, rtol=1e-12)
    assert not np.any(np.delete(spread, np.arange(64, 128)))


def test_rotation_makes_4_bit_updates_of_heavy_tailed_tensors_closer():
    """Mostly small values and a few large ones (as in a local update): rotated, the rounding error is smaller
    than rounding the raw values with one peak-based scale (stochastic_int4 alone, no rotation)."""
    rng = np.random.default_rng(7)
    values = rng.normal(0, 0.001, 4096)
    values[rng.choice(4096, 8, replace=False)] = 0.05
    raw, rotated = [], []
    for seed in range(20):
        (packed,), _ = compression.encode_update([values.astype(np.float32)], "int4", 0.1, None, [False], np.random.default_rng(seed))
        (got,) = compression.decode_update([packed], compression.INT4, [np.zeros(4096, np.float32)], [False])
        rotated.append(np.mean((got - values) ** 2))
        scale, q = compression.stochastic_int4(values, np.random.default_rng(seed))
        raw.append(np.mean((q * scale - values) ** 2))
    assert np.mean(rotated) < np.mean(raw) / 4


@pytest.mark.parametrize("value", [1e-30, 3.0e-4, 0.0123, 1.0, 7.5e3])
def test_int4_scales_are_the_next_bfloat16_up(value):
    scale = compression.bfloat16_at_least(value)
    bits = int(np.asarray(scale, np.float32).view(np.uint32))
    assert bits & 0xFFFF == 0  # fits in 2 bytes
    assert value <= scale <= value * (1 + 2**-7)  # bfloat16 keeps 8 significant bits
