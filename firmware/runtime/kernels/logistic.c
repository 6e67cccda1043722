/*
 * LOGISTIC, int8: TFLM's reference_integer_ops::Logistic. The output is fixed
 * at scale 1/256, zero point -128 (what the converter writes); the sigmoid
 * itself is gemmlowp's fixed-point logistic on a Q4.27 input.
 */
#include "mf_sigmoid_input.h"
#include "mf_ops_common.h"

mf_status mf_logistic_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_sigmoid_input params;
    mf_status status = mf_unary_check_int8(op);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    /* TFLM checks the zero point only, and writes scale-1/256 codes whatever the scale says. */
    if (op->outputs[0].zero_point != INT8_MIN) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return mf_sigmoid_input_params(op->inputs[0].scale, &params);
}

mf_status mf_logistic_eval(const mf_op *op)
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
            const int32_t output_q0 = mf_logistic(input_q4, MF_SIGMOID_INPUT_INTEGER_BITS);
            /* Q0 to 8 fractional bits, then the -128 zero point. */
            out[i] = (int8_t)mf_clamp_i32(mf_rounding_divide_by_pot(output_q0, 23) + INT8_MIN, INT8_MIN, INT8_MAX);
        }
    }
    return MF_OK;
}
