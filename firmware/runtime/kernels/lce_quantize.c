/* LceQuantize (Larq Compute Engine): float32 or int8 -> bit-packed int32 along
 * the last axis, as LCE's bitpack_matrix: bit 1 where x < 0 (float) or
 * x < zero point (int8). */
#include "mf_binary.h"
#include "mf_kernel.h"

static mf_status lce_quantize_check(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    if (op->input_count != 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if ((input->type != MF_FLOAT32 && input->type != MF_INT8) || output->type != MF_INT32) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (!mf_bitpacked_shape_ok(input, output)) {
        return MF_ERR_BAD_MODEL;
    }
    return MF_OK;
}

mf_status mf_lce_quantize_prepare(const mf_op *op, size_t *scratch_bytes)
{
    *scratch_bytes = 0;
    return lce_quantize_check(op);
}

mf_status mf_lce_quantize_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const int32_t channels = input->dims[input->rank - 1];
    const int32_t rows = mf_tensor_flat_size(input) / channels;
    const int32_t words = mf_bitpacked_words(channels);
    int32_t *out = (int32_t *)op->outputs[0].data;
    int32_t row;
    for (row = 0; row < rows; ++row) {
        int32_t word;
        for (word = 0; word < words; ++word) {
            const int32_t first = word * MF_BITPACK_WIDTH;
            const int32_t count = channels - first < MF_BITPACK_WIDTH ? channels - first : MF_BITPACK_WIDTH;
            uint32_t bits = 0;
            int32_t i;
            if (input->type == MF_FLOAT32) {
                const float *in = (const float *)input->data + (size_t)row * channels + first;
                for (i = 0; i < count; ++i) {
                    bits |= (uint32_t)(in[i] < 0.0f) << i;
                }
            } else {
                const int8_t *in = (const int8_t *)input->data + (size_t)row * channels + first;
                for (i = 0; i < count; ++i) {
                    bits |= (uint32_t)((int32_t)in[i] < input->zero_point) << i;
                }
            }
            out[(size_t)row * words + word] = (int32_t)bits;
        }
    }
    return MF_OK;
}
