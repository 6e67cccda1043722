/* FULLY_CONNECTED on float32: TFLM reference_ops::FullyConnected, each output
 * the products of its weight row added one by one (never fused), the bias
 * added last, then clamped. */
#include "mf_affine.h"
#include "mf_float.h"

mf_status mf_fully_connected_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *filter = &op->inputs[1];
    mf_float_range range;
    mf_status status = mf_float_check(op, 2, 3);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (filter->rank != 2 || !mf_affine_weights_format_ok(op)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (filter->dims[1] < 1 || mf_tensor_flat_size(&op->inputs[0]) % filter->dims[1] != 0 ||
        (int64_t)(mf_tensor_flat_size(&op->inputs[0]) / filter->dims[1]) * filter->dims[0] !=
            mf_tensor_flat_size(&op->outputs[0]) ||
        (op->input_count == 3 && op->inputs[2].rank >= 0 && mf_tensor_flat_size(&op->inputs[2]) != filter->dims[0])) {
        return MF_ERR_BAD_MODEL;
    }
    status = mf_activation_range_float(mf_affine_activation(op, MF_AFFINE_FULLY_CONNECTED), &range);
    return status == MF_OK ? mf_float_store(op, &range, sizeof range) : status;
}

mf_status mf_fully_connected_float_eval(const mf_op *op)
{
    const mf_float_range *range = (const mf_float_range *)op->data;
    const mf_tensor *filter = &op->inputs[1];
    const float *bias = op->input_count == 3 ? (const float *)op->inputs[2].data : NULL;
    const float *in = (const float *)op->inputs[0].data;
    const float *w = (const float *)filter->data;
    float *out = (float *)op->outputs[0].data;
    const int32_t units = filter->dims[0];
    const int32_t depth = filter->dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    int32_t b;
    for (b = 0; b < batches; ++b) {
        const float *x = in + (size_t)b * depth;
        int32_t u;
        for (u = 0; u < units; ++u) {
            const float *row = w + (size_t)u * depth;
            float total = 0.0f;
            int32_t k;
            for (k = 0; k < depth; ++k) {
                total += x[k] * row[k];
            }
            out[(size_t)b * units + u] = mf_clamp_float(total + (bias != NULL ? bias[u] : 0.0f), range->act_min, range->act_max);
        }
    }
    return MF_OK;
}
