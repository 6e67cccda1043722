/* QUANTIZE: float32 -> int8 (TFLM AffineQuantize) and int8 -> int8 requantization
 * (TFLM Requantize), bit for bit. */
#include <math.h>

#include "mf_kernel.h"

static mf_status quantize_check(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    if (op->input_count != 1 || op->output_count != 1 || input->rank < 0) { /* rank -1: an absent input */
        return MF_ERR_BAD_MODEL;
    }
    if ((input->type != MF_FLOAT32 && input->type != MF_INT8) || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (output->quant_count != 1 || !(output->scale > 0.0f) || (input->type == MF_INT8 && input->quant_count != 1)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (mf_tensor_flat_size(input) != mf_tensor_flat_size(output)) {
        return MF_ERR_BAD_MODEL;
    }
    return MF_OK;
}

mf_status mf_quantize_prepare(const mf_op *op, size_t *scratch_bytes)
{
    *scratch_bytes = 0;
    return quantize_check(op);
}

mf_status mf_quantize_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    int8_t *out = (int8_t *)output->data;
    const int32_t size = mf_tensor_flat_size(input);
    int32_t i;
    mf_status status = quantize_check(op);
    if (status != MF_OK) {
        return status;
    }
    if (input->type == MF_FLOAT32) {
        const float *in = (const float *)input->data;
        const double scale = (double)output->scale;
        for (i = 0; i < size; ++i) {
            double q = round((double)in[i] / scale);
            q = q < -1e9 ? -1e9 : (q > 1e9 ? 1e9 : q); /* NaN stays NaN: mapped below */
            out[i] = (int8_t)mf_clamp_i32(q == q ? (int32_t)q + output->zero_point : output->zero_point, INT8_MIN, INT8_MAX);
        }
    } else {
        const int8_t *in = (const int8_t *)input->data;
        int32_t multiplier;
        int shift;
        mf_quantize_multiplier((double)input->scale / (double)output->scale, &multiplier, &shift);
        for (i = 0; i < size; ++i) {
            const int32_t value = mf_mul_by_quantized_multiplier((int32_t)in[i] - input->zero_point, multiplier, shift);
            out[i] = (int8_t)mf_clamp_i32(mf_wrap_add(value, output->zero_point), INT8_MIN, INT8_MAX);
        }
    }
    return MF_OK;
}
