"""Robustness of the custom-op path: mutated Larq Compute Engine models (custom codes, FlexBuffer
options, bit-packed tensors) through the loader and interpreter of the ASan+UBSan build.

The seeds are small LCE models whose bytes are mostly the LceBconv2d FlexBuffer
options, so many mutants reach mf_flexbuffer.c and the LCE kernels' checks.
"""

from __future__ import annotations

import numpy as np
import pytest
from lce_oplib import Bconv, bconv_model, dequantize_model

from mcuforge.firmware.engine import fuzz


@pytest.mark.slow  # shares the sanitizer build with test_engine_fuzz.py
def test_mutated_lce_models_do_not_crash(tmp_path):
    rng = np.random.default_rng(7)
    seeds = {
        "bconv_zero_padding.tflite": bconv_model(Bconv((1, 5, 5, 40), 6, (3, 3), padding="SAME", pad_value=0), rng),
        "bconv_int8.tflite": bconv_model(Bconv((1, 4, 4, 7), 3, (2, 2), stride=(2, 1), output="int8", activation=1), rng),
        "bconv_bitpacked.tflite": bconv_model(Bconv((1, 4, 4, 33), 35, (3, 1), padding="SAME", output="bitpacked"), rng),
        "dequantize_int8.tflite": dequantize_model((1, 2, 37), np.int8, (0.05, 3)),
    }
    paths = []
    for name, data in seeds.items():
        paths.append(tmp_path / name)
        paths[-1].write_bytes(data)
    result = fuzz(paths, seconds=8, seed=20261128)
    assert result.iterations > 1000
    assert result.loaded > len(seeds)  # the seeds load and run, and so do some mutants
    assert result.invoked >= len(seeds)
