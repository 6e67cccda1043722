/*
 * Input rescaling shared by LOGISTIC and TANH (TFLM logistic_common.cc and
 * tanh_common.cc): the offset int8 input goes to a Q4.27 fixed-point value,
 * and inputs at or beyond the radius saturate without being computed.
 */
#ifndef MF_SIGMOID_INPUT_H
#define MF_SIGMOID_INPUT_H

#include "mf_kernel.h"

enum { MF_SIGMOID_INPUT_INTEGER_BITS = 4 };

typedef struct mf_sigmoid_input {
    int32_t multiplier;
    int left_shift;
    int32_t range_radius;
} mf_sigmoid_input;

/* TFLM: frexp of scale * 2^27 (no 2^31 fix-up, unlike QuantizeMultiplier), and
 * CalculateInputRadius = floor(15 * 2^27 / 2^left_shift). */
static inline mf_status mf_sigmoid_input_params(float input_scale, mf_sigmoid_input *p)
{
    const double real = (double)input_scale * (double)(1 << (31 - MF_SIGMOID_INPUT_INTEGER_BITS));
    const double q = frexp(real, &p->left_shift);
    double radius;
    if (!(input_scale > 0.0f) || p->left_shift > 31 || p->left_shift < -31) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    p->multiplier = (int32_t)round(q * (double)((int64_t)1 << 31));
    radius = floor(ldexp((double)((1 << MF_SIGMOID_INPUT_INTEGER_BITS) - 1), 31 - MF_SIGMOID_INPUT_INTEGER_BITS - p->left_shift));
    p->range_radius = radius > (double)INT32_MAX ? INT32_MAX : (int32_t)radius;
    return MF_OK;
}

#endif /* MF_SIGMOID_INPUT_H */
