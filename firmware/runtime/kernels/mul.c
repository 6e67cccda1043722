/*
 * MUL, int8, with fused activation and broadcasting: TFLM's reference
 * (mul_common.cc + integer_ops/mul.h). The product of the two offset inputs is
 * rescaled once by in1_scale * in2_scale / out_scale.
 */
#include "mf_broadcast.h"

typedef struct mf_mul_params {
    int32_t multiplier;
    int shift;
    int32_t act_min, act_max;
} mf_mul_params;

static mf_status mf_mul_compute_params(const mf_op *op, mf_mul_params *p)
{
    const mf_tensor *out = &op->outputs[0];
    if (!mf_int8_quantization_ok(&op->inputs[0]) || !mf_int8_quantization_ok(&op->inputs[1]) || !mf_int8_quantization_ok(out)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    mf_quantize_multiplier((double)op->inputs[0].scale * (double)op->inputs[1].scale / (double)out->scale, &p->multiplier,
                           &p->shift);
    if (p->shift > 31) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return mf_activation_range_int8(mf_option_u8(&op->options, 0, MF_ACT_NONE), out, &p->act_min, &p->act_max);
}

mf_status mf_mul_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_mul_params params;
    mf_broadcast bc;
    mf_status status;
    *scratch_bytes = 0;
    if (op->input_count != 2 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (op->inputs[0].type != MF_INT8 || op->inputs[1].type != MF_INT8 || op->outputs[0].type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    return status != MF_OK ? status : mf_mul_compute_params(op, &params);
}

mf_status mf_mul_eval(const mf_op *op)
{
    const int8_t *in1 = (const int8_t *)op->inputs[0].data;
    const int8_t *in2 = (const int8_t *)op->inputs[1].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t in1_offset = -op->inputs[0].zero_point;
    const int32_t in2_offset = -op->inputs[1].zero_point;
    const int32_t out_offset = op->outputs[0].zero_point;
    int32_t index[MF_MAX_DIMS] = {0};
    int32_t offset1 = 0;
    int32_t offset2 = 0;
    int32_t i;
    mf_mul_params p;
    mf_broadcast bc;
    mf_status status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    if (status == MF_OK) {
        status = mf_mul_compute_params(op, &p);
    }
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < bc.count; ++i) {
        const int32_t product = (in1_offset + in1[offset1]) * (in2_offset + in2[offset2]);
        const int32_t raw = mf_wrap_add(out_offset, mf_mul_by_quantized_multiplier(product, p.multiplier, p.shift));
        out[i] = (int8_t)mf_clamp_i32(raw, p.act_min, p.act_max);
        mf_broadcast_next(&bc, index, &offset1, &offset2);
    }
    return MF_OK;
}
