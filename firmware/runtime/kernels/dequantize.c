/* DEQUANTIZE: int8 -> float32, TFLM reference_ops::Dequantize (scale held as double). */
#include "mf_kernel.h"

static mf_status dequantize_check(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    if (op->input_count != 1 || op->output_count != 1 || input->rank < 0) { /* rank -1: an absent input */
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || output->type != MF_FLOAT32) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (input->quant_count != 1) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (mf_tensor_flat_size(input) != mf_tensor_flat_size(output)) {
        return MF_ERR_BAD_MODEL;
    }
    return MF_OK;
}

mf_status mf_dequantize_prepare(const mf_op *op, size_t *scratch_bytes)
{
    *scratch_bytes = 0;
    return dequantize_check(op);
}

mf_status mf_dequantize_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const int8_t *in = (const int8_t *)input->data;
    float *out = (float *)op->outputs[0].data;
    const double scale = (double)input->scale;
    const int32_t size = mf_tensor_flat_size(input);
    int32_t i;
    mf_status status = dequantize_check(op);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < size; ++i) {
        out[i] = (float)(scale * (double)((int32_t)in[i] - input->zero_point));
    }
    return MF_OK;
}
