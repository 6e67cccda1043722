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
mf_status mf_sigmoid_input_params(float input_scale, mf_sigmoid_input *p);

#endif /* MF_SIGMOID_INPUT_H */
