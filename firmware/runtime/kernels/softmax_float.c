/* SOFTMAX on float32: TFLM reference_ops::Softmax. Per row: the maximum
 * (std::max from the lowest float), each exp((x - max) * beta) with expf (what
 * std::exp of a float calls) summed in order, then each divided by the sum. */
#include <float.h>
#include <math.h>

#include "mf_float.h"

enum { OPT_BETA = 0 };

/* The op-data record. */
typedef struct softmax_float_data {
    float beta;
} softmax_float_data;

mf_status mf_softmax_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    softmax_float_data d;
    const mf_status status = mf_float_check(op, 1, 1);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (input->rank < 1 || output->rank != input->rank || mf_tensor_flat_size(input) != mf_tensor_flat_size(output) ||
        output->dims[output->rank - 1] != input->dims[input->rank - 1]) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    d.beta = mf_option_f32(&op->options, OPT_BETA, 1.0f);
    return mf_float_store(op, &d, sizeof d);
}

mf_status mf_softmax_float_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const float *in = (const float *)input->data;
    float *out = (float *)op->outputs[0].data;
    const float beta = ((const softmax_float_data *)op->data)->beta;
    const int32_t depth = input->dims[input->rank - 1];
    const int32_t rows = depth > 0 ? mf_tensor_flat_size(input) / depth : 0;
    int32_t r;
    for (r = 0; r < rows; ++r) {
        const float *x = in + (size_t)r * depth;
        float *y = out + (size_t)r * depth;
        float max = -FLT_MAX;
        float sum = 0.0f;
        int32_t c;
        for (c = 0; c < depth; ++c) {
            if (max < x[c]) {
                max = x[c];
            }
        }
        for (c = 0; c < depth; ++c) {
            y[c] = expf((x[c] - max) * beta);
            sum += y[c];
        }
        for (c = 0; c < depth; ++c) {
            y[c] = y[c] / sum;
        }
    }
    return MF_OK;
}
