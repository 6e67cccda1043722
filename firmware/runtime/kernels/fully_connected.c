/* FULLY_CONNECTED, int8 with per-tensor or per-channel int8 weights and int32 bias:
 * TFLM reference_integer_ops::FullyConnected, bit for bit. */
#include "mf_kernel.h"

enum { OPT_ACTIVATION = 0, OPT_WEIGHTS_FORMAT = 1 };

static mf_status fc_check(const mf_op *op, int32_t *act_min, int32_t *act_max)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    int32_t units;
    int32_t depth;
    if (op->input_count < 2 || op->input_count > 3 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || filter->type != MF_INT8 || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (filter->rank != 2 || input->quant_count != 1 || output->quant_count != 1 || filter->quant_count < 1 ||
        mf_option_u8(&op->options, OPT_WEIGHTS_FORMAT, 0) != 0) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    units = filter->dims[0];
    depth = filter->dims[1];
    if (filter->quant_count != 1 && (filter->quant_count != units || filter->quant_dim != 0)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (op->input_count == 3 && op->inputs[2].rank >= 0) {
        if (op->inputs[2].type != MF_INT32) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (mf_tensor_flat_size(&op->inputs[2]) != units) {
            return MF_ERR_BAD_MODEL;
        }
    }
    if (depth < 1 || mf_tensor_flat_size(input) % depth != 0 ||
        (int64_t)(mf_tensor_flat_size(input) / depth) * units != mf_tensor_flat_size(output)) {
        return MF_ERR_BAD_MODEL;
    }
    return mf_activation_range_int8(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), output, act_min, act_max);
}

mf_status mf_fully_connected_prepare(const mf_op *op, size_t *scratch_bytes)
{
    int32_t act_min;
    int32_t act_max;
    *scratch_bytes = 0;
    return fc_check(op, &act_min, &act_max);
}

mf_status mf_fully_connected_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t units = filter->dims[0];
    const int32_t depth = filter->dims[1];
    const int32_t input_offset = -input->zero_point;
    const int32_t filter_offset = -filter->zero_point;
    int32_t act_min;
    int32_t act_max;
    int32_t batches;
    int32_t multiplier = 0;
    int shift = 0;
    int32_t u;
    mf_status status = fc_check(op, &act_min, &act_max);
    if (status != MF_OK) {
        return status;
    }
    batches = mf_tensor_flat_size(input) / depth;
    for (u = 0; u < units; ++u) {
        int32_t b;
        if (u == 0 || filter->quant_count > 1) { /* one multiplier per unit only for per-channel weights */
            mf_quantize_multiplier((double)input->scale * (double)mf_tensor_scale_at(filter, u) / (double)output->scale,
                                   &multiplier, &shift);
        }
        for (b = 0; b < batches; ++b) {
            const int8_t *x = in + (size_t)b * depth;
            const int8_t *row = w + (size_t)u * depth;
            int32_t acc = 0;
            int32_t d;
            for (d = 0; d < depth; ++d) {
                acc = mf_wrap_add(acc, ((int32_t)row[d] + filter_offset) * ((int32_t)x[d] + input_offset));
            }
            if (bias != NULL) {
                acc = mf_wrap_add(acc, bias[u]);
            }
            acc = mf_wrap_add(mf_mul_by_quantized_multiplier(acc, multiplier, shift), output->zero_point);
            out[(size_t)b * units + u] = (int8_t)mf_clamp_i32(acc, act_min, act_max);
        }
    }
    return MF_OK;
}
