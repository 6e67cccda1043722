"""The build's choice of depthwise loops under a code budget (firmware/code_budget.py), measured from the real link.

A model with a wide and a narrow 3x3 depthwise layer links both loop
families when the narrow one takes the NHWC loops; the channel-major loops
alone are smaller. A budget the NHWC choice's measured code passes must get
the channel-major image, a budget it fits the NHWC one, and both must give
TFLM's outputs.
"""

from __future__ import annotations

import numpy as np
import pytest
from engine.oplib import convert, random_inputs, run_tflm

from mcuforge.firmware.code_budget import DEFAULT_CODE_BUDGET, budgeted_image
from mcuforge.firmware.prepared import NARROW_DEPTHWISE_CHANNEL_MAJOR, PreparedEngine, eval_list

NHWC_LOOP = "mfd_depthwise_eval_3x3_nhwc"  # kernels/mf_eval_variants.h: the narrow layers' NHWC loop
CHANNEL_MAJOR_LOOP = "mfd_depthwise_eval_3x3"


@pytest.fixture(scope="module")
def wide_then_narrow() -> bytes:
    """8 wide, then 3 wide (stride 2, VALID): the second is narrower than the NHWC loops' threshold (6)."""
    import tensorflow as tf

    rng = np.random.default_rng(20)
    first, second = (tf.constant(rng.normal(0, 0.5, size=(3, 3, 8, 1)).astype(np.float32)) for _ in range(2))

    def layers(x):
        x = tf.nn.relu(tf.nn.depthwise_conv2d(x, first, [1, 1, 1, 1], "SAME"))
        return tf.nn.relu(tf.nn.depthwise_conv2d(x, second, [1, 2, 2, 1], "VALID"))

    return convert(layers, [(1, 8, 8, 8)], rng, value_range=(-2.0, 2.0))


def loops(image) -> set[str]:
    """The depthwise loop functions the image's runner table names."""
    return {name for name in (NHWC_LOOP, CHANNEL_MAJOR_LOOP) if f", {name})" in eval_list(image)}


def assert_equals_tflm(model: bytes, image) -> None:
    rng = np.random.default_rng(3)
    for _ in range(2):
        x = random_inputs(model, rng)
        with PreparedEngine.from_image(image, "dsp") as engine:
            got = engine.invoke(x)
        assert np.array_equal(got[0], run_tflm(model, x)[0])


def test_a_budget_the_nhwc_loops_pass_takes_the_channel_major_loops_and_both_equal_tflm(wide_then_narrow):
    roomy = budgeted_image(wide_then_narrow, "dsp", DEFAULT_CODE_BUDGET)
    assert roomy.choices == 0 and loops(roomy.image) == {NHWC_LOOP, CHANNEL_MAJOR_LOOP}
    nhwc_code = roomy.code_bytes[0]
    assert nhwc_code <= DEFAULT_CODE_BUDGET

    tight = budgeted_image(wide_then_narrow, "dsp", nhwc_code - 1)
    assert tight.choices == NARROW_DEPTHWISE_CHANNEL_MAJOR and loops(tight.image) == {CHANNEL_MAJOR_LOOP}
    assert tight.code_bytes[NARROW_DEPTHWISE_CHANNEL_MAJOR] < nhwc_code  # measured: one loop family less
    assert "within" in tight.describe()

    for image in (roomy.image, tight.image):
        assert_equals_tflm(wide_then_narrow, image)


def test_a_budget_nothing_fits_keeps_the_fastest_loops(wide_then_narrow):
    over = budgeted_image(wide_then_narrow, "dsp", 0)
    assert over.choices == 0 and loops(over.image) == {NHWC_LOOP, CHANNEL_MAJOR_LOOP}
    assert set(over.code_bytes) == {0, NARROW_DEPTHWISE_CHANNEL_MAJOR} and "over" in over.describe()


def test_portable_kernels_have_no_choice_and_link_nothing_to_decide(wide_then_narrow):
    portable = budgeted_image(wide_then_narrow, "portable", 0)
    assert portable.choices == 0 and portable.code_bytes == {}
