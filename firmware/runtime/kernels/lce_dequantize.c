/* LceDequantize (Larq Compute Engine): bit-packed int32 -> float32 (+1.0 for
 * bit 0, -1.0 for bit 1) or int8 (the zero point plus or minus round(1 / scale),
 * saturated), as LCE's DequantizeEval. */
#include <math.h>

#include "mf_binary.h"
#include "mf_kernel.h"

/* The op-data record: the int8 values of bits 0 and 1 (int8 output only). */
typedef struct lce_dequantize_data {
    int32_t zero_bit, one_bit;
} lce_dequantize_data;

static mf_status lce_dequantize_check(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    if (op->input_count != 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT32 || (output->type != MF_FLOAT32 && output->type != MF_INT8)) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (!mf_bitpacked_shape_ok(output, input)) {
        return MF_ERR_BAD_MODEL;
    }
    /* round(1 / scale) must fit an int32 offset from the zero point. */
    if (output->type == MF_INT8 && (output->quant_count != 1 || !(output->scale >= 1e-9f) || output->zero_point < INT8_MIN ||
                                    output->zero_point > INT8_MAX)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return MF_OK;
}

mf_status mf_lce_dequantize_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *output = &op->outputs[0];
    lce_dequantize_data *record;
    int32_t offset;
    mf_status status = lce_dequantize_check(op);
    *scratch_bytes = 0;
    if (status != MF_OK || output->type != MF_INT8) {
        return status;
    }
    record = (lce_dequantize_data *)mf_op_data(op, sizeof *record);
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    offset = (int32_t)roundf(1.0f / output->scale);
    record->zero_bit = output->zero_point + offset < INT8_MAX ? output->zero_point + offset : INT8_MAX;
    record->one_bit = output->zero_point - offset > INT8_MIN ? output->zero_point - offset : INT8_MIN;
    return MF_OK;
}

mf_status mf_lce_dequantize_eval(const mf_op *op)
{
    const mf_tensor *output = &op->outputs[0];
    const int32_t channels = output->dims[output->rank - 1];
    const int32_t rows = mf_tensor_flat_size(output) / channels;
    const int32_t words = mf_bitpacked_words(channels);
    const int32_t *in = (const int32_t *)op->inputs[0].data;
    const lce_dequantize_data *record = (const lce_dequantize_data *)op->data;
    int32_t row;
    for (row = 0; row < rows; ++row) {
        int32_t c;
        for (c = 0; c < channels; ++c) {
            const uint32_t bit = ((uint32_t)in[(size_t)row * words + c / MF_BITPACK_WIDTH] >> (c % MF_BITPACK_WIDTH)) & 1u;
            const size_t at = (size_t)row * channels + c;
            if (output->type == MF_FLOAT32) {
                ((float *)output->data)[at] = bit ? -1.0f : 1.0f;
            } else {
                ((int8_t *)output->data)[at] = (int8_t)(bit ? record->one_bit : record->zero_bit);
            }
        }
    }
    return MF_OK;
}
