/*
 * RELU6, int8: TFLM's Relu6Quantized. TFLM clamps the raw input between the
 * input's quantized 0 and 6 and does not requantize (the converter gives the
 * output the input's quantization).
 */
#include "mf_ops_common.h"

mf_status mf_relu6_prepare(const mf_op *op, size_t *scratch_bytes)
{
    *scratch_bytes = 0;
    return mf_unary_check_int8(op);
}

mf_status mf_relu6_eval(const mf_op *op)
{
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t lower = op->inputs[0].zero_point;
    /* FloatToQuantizedType<int8_t>(6.0f, scale, zero_point): float division,
     * roundf; bounded before the cast so a tiny scale cannot overflow int32. */
    const float six = roundf(6.0f / op->inputs[0].scale);
    const int32_t upper = mf_clamp_i32((int32_t)(six < 1024.0f ? six : 1024.0f) + lower, INT8_MIN, INT8_MAX);
    const int32_t count = mf_tensor_flat_size(&op->inputs[0]);
    int32_t i;
    for (i = 0; i < count; ++i) {
        out[i] = (int8_t)mf_min_i32(mf_max_i32(in[i], lower), upper);
    }
    return MF_OK;
}
