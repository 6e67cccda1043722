/*
 * RELU, int8: TFLM's ReluQuantized. The input is requantized to the output
 * scale, then clamped below at the output zero point (real 0).
 */
#include "mf_ops_common.h"

/* in_scale / out_scale; a shift past 31 would leave int32. */
static mf_status mf_relu_multiplier(const mf_op *op, int32_t *multiplier, int *shift)
{
    mf_quantize_multiplier((double)op->inputs[0].scale / (double)op->outputs[0].scale, multiplier, shift);
    return *shift <= 31 ? MF_OK : MF_ERR_UNSUPPORTED_PARAM;
}

mf_status mf_relu_prepare(const mf_op *op, size_t *scratch_bytes)
{
    int32_t multiplier;
    int shift;
    mf_status status = mf_unary_check_int8(op);
    *scratch_bytes = 0;
    return status != MF_OK ? status : mf_relu_multiplier(op, &multiplier, &shift);
}

mf_status mf_relu_eval(const mf_op *op)
{
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t in_zp = op->inputs[0].zero_point;
    const int32_t out_zp = op->outputs[0].zero_point;
    const int32_t act_min = mf_max_i32(INT8_MIN, out_zp);
    const int32_t count = mf_tensor_flat_size(&op->inputs[0]);
    int32_t multiplier;
    int shift;
    int32_t i;
    mf_status status = mf_relu_multiplier(op, &multiplier, &shift);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < count; ++i) {
        const int32_t value = mf_wrap_add(out_zp, mf_mul_by_quantized_multiplier(in[i] - in_zp, multiplier, shift));
        out[i] = (int8_t)mf_clamp_i32(value, act_min, INT8_MAX);
    }
    return MF_OK;
}
