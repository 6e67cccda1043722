/* SOFTMAX, int8 in and out (output scale 1/256, zero point -128):
 * TFLM reference_ops::Softmax on gemmlowp fixed point, bit for bit. */
#include <math.h>

#include "mf_kernel.h"

enum { OPT_BETA = 0 };
enum { SCALED_DIFF_INTEGER_BITS = 5, ACCUMULATION_INTEGER_BITS = 12 };

/* The op-data record. */
typedef struct softmax_params {
    int32_t multiplier;
    int32_t left_shift;
} softmax_params;

/* TFLM's diff_min, floor(31 * 2^26 / 2^left_shift), exact in integers. */
static int32_t softmax_diff_min(const softmax_params *p)
{
    return -(int32_t)((((uint32_t)1 << SCALED_DIFF_INTEGER_BITS) - 1u) << (31 - SCALED_DIFF_INTEGER_BITS) >> p->left_shift);
}

/* TFLM PreprocessSoftmaxScaling and CalculateInputRadius. */
static mf_status softmax_check(const mf_op *op, softmax_params *p)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const double beta = (double)mf_option_f32(&op->options, OPT_BETA, 1.0f);
    double real;
    if (op->input_count != 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (input->rank < 1 || input->quant_count != 1 || output->zero_point != -128 ||
        fabsf(output->scale - 1.0f / 256) > 0.001f / 256 || mf_tensor_flat_size(input) != mf_tensor_flat_size(output) ||
        output->dims[output->rank > 0 ? output->rank - 1 : 0] != input->dims[input->rank - 1]) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    real = beta * (double)input->scale * (double)(1 << (31 - SCALED_DIFF_INTEGER_BITS));
    if (real > 2147483647.0) {
        real = 2147483647.0;
    }
    if (!(real > 1.0)) {
        return MF_ERR_UNSUPPORTED_PARAM; /* TFLM requires a multiplier above one */
    }
    {
        int left_shift;
        mf_quantize_multiplier(real, &p->multiplier, &left_shift);
        p->left_shift = left_shift;
    }
    return p->left_shift < 0 || p->left_shift > 31 ? MF_ERR_UNSUPPORTED_PARAM : MF_OK;
}

mf_status mf_softmax_prepare(const mf_op *op, size_t *scratch_bytes)
{
    softmax_params p;
    softmax_params *record;
    const mf_status status = softmax_check(op, &p);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    record = (softmax_params *)mf_op_data(op, sizeof p);
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    *record = p;
    return MF_OK;
}

mf_status mf_softmax_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const softmax_params *p = (const softmax_params *)op->data;
    const int32_t diff_min = softmax_diff_min(p);
    int32_t depth;
    int32_t rows;
    int32_t r;
    depth = input->dims[input->rank - 1];
    rows = depth > 0 ? mf_tensor_flat_size(input) / depth : 0;
    for (r = 0; r < rows; ++r) {
        const int8_t *x = in + (size_t)r * depth;
        int8_t *y = out + (size_t)r * depth;
        int32_t max_in_row = INT8_MIN;
        int32_t sum_of_exps = 0; /* Q12 */
        int32_t scale;
        int num_bits_over_unit;
        int32_t c;
        for (c = 0; c < depth; ++c) {
            max_in_row = mf_max_i32(max_in_row, x[c]);
        }
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            if (diff >= diff_min) {
                const int32_t scaled = mf_mul_by_quantized_multiplier_greater_than_one(diff, p->multiplier, p->left_shift);
                sum_of_exps = mf_wrap_add(sum_of_exps, mf_rounding_divide_by_pot(
                                                           mf_exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS),
                                                           ACCUMULATION_INTEGER_BITS));
            }
        }
        scale = mf_get_reciprocal(sum_of_exps, ACCUMULATION_INTEGER_BITS, &num_bits_over_unit);
        for (c = 0; c < depth; ++c) {
            const int32_t diff = (int32_t)x[c] - max_in_row;
            int32_t value = INT8_MIN;
            if (diff >= diff_min) {
                const int32_t scaled = mf_mul_by_quantized_multiplier_greater_than_one(diff, p->multiplier, p->left_shift);
                const int32_t exp_q0 = mf_exp_on_negative_values(scaled, SCALED_DIFF_INTEGER_BITS);
                const int exponent = num_bits_over_unit + 31 - 8;
                const int32_t unsaturated = mf_rounding_divide_by_pot(mf_srdhm(scale, exp_q0),
                                                                      exponent < 0 ? 0 : (exponent > 31 ? 31 : exponent));
                value = mf_clamp_i32(unsaturated + INT8_MIN, INT8_MIN, INT8_MAX);
            }
            y[c] = (int8_t)value;
        }
    }
    return MF_OK;
}
