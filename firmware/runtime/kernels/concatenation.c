/*
 * CONCATENATION, int8: TFLM's reference_ops::Concatenation. TFLM copies int8
 * codes without requantizing, so it rejects inputs quantized unlike the output
 * (the converter inserts QUANTIZE ops instead), and fused activations.
 */
#include "mf_ops_common.h"

/* The axis as a non-negative index, -1 when out of range (or the output absent). */
static int32_t mf_concatenation_axis(const mf_op *op)
{
    const int32_t rank = op->outputs[0].rank;
    int32_t axis = mf_option_i32(&op->options, 0, 0);
    if (rank < 1) {
        return -1;
    }
    if (axis < 0) {
        axis += rank;
    }
    return axis >= 0 && axis < rank ? axis : -1;
}

mf_status mf_concatenation_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *out = &op->outputs[0];
    int64_t axis_total = 0;
    int32_t axis;
    int32_t i;
    int32_t d;
    *scratch_bytes = 0;
    if (op->input_count < 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    axis = mf_concatenation_axis(op);
    if (mf_option_u8(&op->options, 1, MF_ACT_NONE) != MF_ACT_NONE) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (out->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (axis < 0) {
        return MF_ERR_BAD_MODEL;
    }
    for (i = 0; i < op->input_count; ++i) {
        const mf_tensor *in = &op->inputs[i];
        if (in->type != MF_INT8) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (in->rank != out->rank) {
            return MF_ERR_BAD_MODEL;
        }
        if (!mf_dims_positive(in)) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        if (in->scale != out->scale || in->zero_point != out->zero_point) {
            return MF_ERR_UNSUPPORTED_PARAM; /* TFLM copies codes, so it demands one quantization */
        }
        for (d = 0; d < out->rank; ++d) {
            if (d != axis && in->dims[d] != out->dims[d]) {
                return MF_ERR_BAD_MODEL;
            }
        }
        axis_total += in->dims[axis];
    }
    return axis_total == out->dims[axis] ? MF_OK : MF_ERR_BAD_MODEL;
}

mf_status mf_concatenation_eval(const mf_op *op)
{
    const mf_tensor *out = &op->outputs[0];
    const int32_t axis = mf_concatenation_axis(op);
    int8_t *dst = (int8_t *)out->data;
    int32_t outer = 1;
    int32_t inner = 1;
    int32_t o;
    int32_t i;
    int32_t d;
    for (d = 0; d < axis; ++d) {
        outer *= out->dims[d];
    }
    for (d = axis + 1; d < out->rank; ++d) {
        inner *= out->dims[d];
    }
    for (o = 0; o < outer; ++o) {
        for (i = 0; i < op->input_count; ++i) {
            const size_t chunk = (size_t)op->inputs[i].dims[axis] * (size_t)inner;
            memcpy(dst, (const int8_t *)op->inputs[i].data + (size_t)o * chunk, chunk);
            dst += chunk;
        }
    }
    return MF_OK;
}
