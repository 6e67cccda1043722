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
    tensors, residual = compression.encode_update(delta, "int8", 0.1, None)
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
        tensors, residual = compression.encode_update(delta, "topk", 0.1, residual)
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
    encoded, _ = compression.encode_update(random_weights(2, 0.01), "int8", 0.1, None)
    int8 = uploaded_bytes(fit_res(Parameters(encoded, compression.INT8)))
    encoded, _ = compression.encode_update(random_weights(2, 0.01), "topk", 0.1, None)
    topk = uploaded_bytes(fit_res(Parameters(encoded, compression.TOPK)))
    # float32: 4 bytes a value plus each array's .npy header (128 bytes) and record framing.
    assert 4 * values + 128 * tensors <= plain <= 4 * values + 128 * tensors + 100 * tensors + 300
    # int8: 1 byte a value plus a float32 scale per tensor, and the same framing.
    assert values + 4 * tensors <= int8 <= values + 4 * tensors + 100 * tensors + 300
    # top-k at 10 %: per kept value a uint16 index and an int8 value, plus a count and a scale per tensor.
    kept = sum(max(1, round(0.1 * w.size)) for w in weights)
    assert 3 * kept + 8 * tensors <= topk <= 3 * kept + 8 * tensors + 100 * tensors + 300
    assert plain / int8 > 3.5 and plain / topk > 8


def test_unknown_encoding_is_refused():
    with pytest.raises(ValueError, match="no delta encoding"):
        compression.encode_update(random_weights(0), "none", 0.1, None)
