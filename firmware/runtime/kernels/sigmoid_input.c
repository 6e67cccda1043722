/* Input rescaling shared by LOGISTIC and TANH (see mf_sigmoid_input.h), compiled once. */
#include <math.h>

#include "mf_sigmoid_input.h"

mf_status mf_sigmoid_input_params(float input_scale, mf_sigmoid_input *p)
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
