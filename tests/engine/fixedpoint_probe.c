/* Exported wrappers so the tests can call mf_fixedpoint.h's static inline functions. */
#include "mf_fixedpoint.h"

int32_t probe_srdhm(int32_t a, int32_t b) { return mf_srdhm(a, b); }
int32_t probe_rounding_divide_by_pot(int32_t x, int exponent) { return mf_rounding_divide_by_pot(x, exponent); }
int32_t probe_mul_by_quantized_multiplier(int32_t x, int32_t m, int shift) { return mf_mul_by_quantized_multiplier(x, m, shift); }
void probe_quantize_multiplier(double real, int32_t *m, int *shift) { mf_quantize_multiplier(real, m, shift); }
int32_t probe_exp_on_negative_values(int32_t a, int integer_bits) { return mf_exp_on_negative_values(a, integer_bits); }
int32_t probe_one_over_one_plus_x(int32_t a) { return mf_one_over_one_plus_x(a); }
int32_t probe_logistic(int32_t a, int integer_bits) { return mf_logistic(a, integer_bits); }
int32_t probe_tanh(int32_t a, int integer_bits) { return mf_tanh(a, integer_bits); }
void probe_requant_of_scales(float input, float filter, float output, int32_t *m, int *shift)
{
    const mf_requant q = mf_requant_of_scales(input, filter, output);
    *m = q.multiplier;
    *shift = q.left - q.right;
}
