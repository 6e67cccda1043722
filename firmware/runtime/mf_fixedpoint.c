/* The out-of-line part of mf_fixedpoint.h. */
#include "mf_fixedpoint.h"

void mf_quantize_multiplier(double real, int32_t *multiplier, int *shift)
{
    int exponent = 0;
    double q;
    int64_t q_fixed;
    if (real == 0.0 || !(fabs(real) < 2147483648.0)) {
        *multiplier = 0;
        *shift = 0;
        return;
    }
    q = frexp(real, &exponent);
    q_fixed = (int64_t)round(q * (double)((int64_t)1 << 31));
    if (q_fixed == ((int64_t)1 << 31)) {
        q_fixed /= 2;
        ++exponent;
    }
    if (exponent < -31) {
        exponent = 0;
        q_fixed = 0;
    }
    *multiplier = (int32_t)q_fixed;
    *shift = exponent;
}
