/*
 * HARD_SWISH, int8: TFLM's reference_ops::HardSwish on 16-bit fixed point.
 * x * relu6(x + 3) / 6 is computed as the input on a "hires" scale (input
 * scale / 128) times a "reluish" factor in [0, 1] (x rescaled so that 3.0 is
 * 32768, then mapped from [-1, 1] to [0, 1]), with int16 multipliers.
 */
#include "mf_ops_common.h"

typedef struct mf_hard_swish_params {
    int16_t output_multiplier;
    int output_exponent;
    int16_t reluish_multiplier;
    int reluish_exponent;
} mf_hard_swish_params;

/* TFLM DownScaleInt32ToInt16Multiplier: the top 16 bits, rounded. */
static int16_t mf_hard_swish_downscale(int32_t multiplier)
{
    const int32_t rounding = (int32_t)1 << 15;
    if (multiplier >= INT32_MAX - rounding) {
        return INT16_MAX;
    }
    return (int16_t)((multiplier + rounding) >> 16);
}

static mf_status mf_hard_swish_compute_params(const mf_op *op, mf_hard_swish_params *p)
{
    /* TFLM divides in float and only then widens to double. */
    const float hires_input_scale = (1.0f / 128.0f) * op->inputs[0].scale;
    const float reluish_scale = 3.0f / 32768.0f;
    const float output_ratio = hires_input_scale / op->outputs[0].scale;
    int32_t multiplier;
    if (!(output_ratio <= FLT_MAX)) { /* the float division can overflow where TFLM's would too */
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    mf_quantize_multiplier((double)output_ratio, &multiplier, &p->output_exponent);
    p->output_multiplier = mf_hard_swish_downscale(multiplier);
    mf_quantize_multiplier((double)(hires_input_scale / reluish_scale), &multiplier, &p->reluish_exponent);
    p->reluish_multiplier = mf_hard_swish_downscale(multiplier);
    /* TFLM refuses an output multiplier above 1; shifts past 15 would leave int16. */
    if (p->output_exponent > 0 || p->output_exponent < -15 || p->reluish_exponent > 15 || p->reluish_exponent < -15) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return MF_OK;
}

mf_status mf_hard_swish_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_hard_swish_params params;
    mf_status status = mf_unary_check_int8(op);
    *scratch_bytes = 0;
    return status != MF_OK ? status : mf_hard_swish_compute_params(op, &params);
}

mf_status mf_hard_swish_eval(const mf_op *op)
{
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t in_zp = op->inputs[0].zero_point;
    const int32_t out_zp = op->outputs[0].zero_point;
    const int32_t count = mf_tensor_flat_size(&op->inputs[0]);
    mf_hard_swish_params p;
    int32_t i;
    mf_status status = mf_hard_swish_compute_params(op, &p);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < count; ++i) {
        const int16_t input = (int16_t)(in[i] - in_zp);
        const int16_t input_hires = (int16_t)(input * (1 << 7));
        const int16_t input_preshift_output = mf_srdhm_i16(input_hires, p.output_multiplier);
        int16_t reluish = input_hires;
        int16_t preshift_output;
        int32_t output;
        /* Left shift all but one bit, saturating, so saturation there cannot
         * change the result; the last bit goes after the multiply. */
        if (p.reluish_exponent > 0) {
            reluish = mf_saturating_left_shift_i16(reluish, p.reluish_exponent - 1);
        }
        reluish = mf_srdhm_i16(reluish, p.reluish_multiplier);
        if (p.reluish_exponent > 0) {
            reluish = mf_saturating_left_shift_i16(reluish, 1);
        }
        if (p.reluish_exponent < 0) {
            reluish = (int16_t)mf_rounding_divide_by_pot(reluish, -p.reluish_exponent);
        }
        /* [-1, 1] to [0, 1] in Q0.15. */
        reluish = (int16_t)((reluish + (1 << 15)) >> 1);
        preshift_output = mf_saturating_doubling_high_mul_i16(reluish, input_preshift_output);
        /* TFLM adds the zero point in int16, wrapping. */
        output = mf_rounding_divide_by_pot(preshift_output, -p.output_exponent) + out_zp;
        output = (int32_t)((uint32_t)(output + 32768) & 0xFFFFu) - 32768;
        out[i] = (int8_t)mf_clamp_i32(output, INT8_MIN, INT8_MAX);
    }
    return MF_OK;
}
