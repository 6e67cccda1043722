/*
 * TANH, int8: TFLM's reference_integer_ops::Tanh. TFLM assumes the output
 * quantization the converter gives (scale 1/128, zero point 0) and does not
 * read it; gemmlowp's fixed-point tanh runs on a Q4.27 input.
 */
#include "mf_sigmoid_input.h"
#include "mf_ops_common.h"

mf_status mf_tanh_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_sigmoid_input params;
    mf_status status = mf_unary_check_int8(op);
    *scratch_bytes = 0;
    return status != MF_OK ? status : mf_sigmoid_input_params(op->inputs[0].scale, &params);
}

mf_status mf_tanh_eval(const mf_op *op)
{
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t in_zp = op->inputs[0].zero_point;
    const int32_t count = mf_tensor_flat_size(&op->inputs[0]);
    mf_sigmoid_input p;
    int32_t i;
    mf_status status = mf_sigmoid_input_params(op->inputs[0].scale, &p);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < count; ++i) {
        const int32_t input = in[i] - in_zp;
        if (input <= -p.range_radius) {
            out[i] = INT8_MIN;
        } else if (input >= p.range_radius) {
            out[i] = INT8_MAX;
        } else {
            const int32_t input_q4 = mf_mul_by_quantized_multiplier(input, p.multiplier, p.left_shift);
            const int32_t output_q0 = mf_tanh(input_q4, MF_SIGMOID_INPUT_INTEGER_BITS);
            /* Q0 to 7 fractional bits (scale 1/128). */
            out[i] = (int8_t)mf_clamp_i32(mf_rounding_divide_by_pot(output_q0, 24), INT8_MIN, INT8_MAX);
        }
    }
    return MF_OK;
}
