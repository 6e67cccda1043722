/*
 * Fixed-point arithmetic shared by every kernel, written once. Each function
 * reproduces TFLM's reference kernels bit for bit (tensorflow/lite/kernels/
 * internal/common.h with TFLITE_SINGLE_ROUNDING off, i.e. double rounding, and
 * the gemmlowp fixedpoint routines it uses). Signed overflow is avoided by
 * wrapping through uint32_t where the reference relies on two's complement.
 *
 * A "Qn" raw value below is a gemmlowp FixedPoint<int32_t, n>: n integer bits,
 * 31 - n fractional bits.
 */
#ifndef MF_FIXEDPOINT_H
#define MF_FIXEDPOINT_H

#include <math.h>
#include <stdint.h>

#define MF_Q0_ONE INT32_MAX /* FixedPoint<int32_t, 0>::One() saturates */

static inline int32_t mf_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }
static inline int32_t mf_max_i32(int32_t a, int32_t b) { return a > b ? a : b; }
static inline int32_t mf_clamp_i32(int32_t x, int32_t lo, int32_t hi) { return mf_min_i32(mf_max_i32(x, lo), hi); }

/* Two's complement add/sub/shift without signed-overflow UB. */
static inline int32_t mf_wrap_add(int32_t a, int32_t b) { return (int32_t)((uint32_t)a + (uint32_t)b); }
static inline int32_t mf_wrap_sub(int32_t a, int32_t b) { return (int32_t)((uint32_t)a - (uint32_t)b); }
static inline int32_t mf_wrap_shl(int32_t a, int shift) { return (int32_t)((uint32_t)a << shift); }

/* gemmlowp SaturatingRoundingDoublingHighMul: round(a * b / 2^31), saturated. */
static inline int32_t mf_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? (int64_t)1 << 30 : 1 - ((int64_t)1 << 30);
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT: x / 2^exponent rounded half away from zero; exponent in [0, 31]. */
static inline int32_t mf_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* gemmlowp SaturatingRoundingMultiplyByPOT: x * 2^exponent, saturating when exponent > 0. */
static inline int32_t mf_saturating_rounding_mul_by_pot(int32_t x, int exponent)
{
    int32_t threshold;
    if (exponent <= 0) {
        return mf_rounding_divide_by_pot(x, -exponent);
    }
    threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return mf_wrap_shl(x, exponent);
}

/* TFLM MultiplyByQuantizedMultiplier (double rounding): x * multiplier * 2^shift. */
static inline int32_t mf_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    return mf_rounding_divide_by_pot(mf_srdhm(mf_wrap_shl(x, left_shift), multiplier), right_shift);
}

/* A requantization computed once (in prepare): multiplier and shift as
 * mf_quantize_multiplier gives them, the shift split into the left shift
 * before and the right shift after the multiply (one of them is 0). Kept in
 * op-data records, which hold 32-bit words only. */
typedef struct mf_requant {
    int32_t multiplier;
    int16_t left;
    int16_t right;
} mf_requant;

/* mf_mul_by_quantized_multiplier with a prepared requantization. */
static inline int32_t mf_requantize(int32_t x, mf_requant q)
{
    return mf_rounding_divide_by_pot(mf_srdhm(mf_wrap_shl(x, q.left), q.multiplier), q.right);
}

/* TFLM MultiplyByQuantizedMultiplierSmallerThanOneExp. */
static inline int32_t mf_mul_by_quantized_multiplier_smaller_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return mf_rounding_divide_by_pot(mf_srdhm(x, multiplier), -left_shift);
}

/* TFLM MultiplyByQuantizedMultiplierGreaterThanOne. */
static inline int32_t mf_mul_by_quantized_multiplier_greater_than_one(int32_t x, int32_t multiplier, int left_shift)
{
    return mf_srdhm(mf_wrap_shl(x, left_shift), multiplier);
}

/* TFLM QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).
 * Values no valid model produces (NaN, infinities, above 2^31) give a zero multiplier
 * instead of undefined behaviour. Out of line (mf_fixedpoint.c): it is not on any
 * per-element path, and one copy saves flash in every kernel that calls it. */
void mf_quantize_multiplier(double real, int32_t *multiplier, int *shift);
/* mf_quantize_multiplier(input * filter / output) as a requantization, the
 * quotient computed in double as TFLM does, but in integers only (exact long
 * division, then the same two roundings): no soft-float on the device. Scales
 * must be finite and not negative (a zero one gives a zero multiplier, as TFLM). */
mf_requant mf_requant_of_scales(float input, float filter, float output);

/* Number of leading zero bits, 32 for zero (TFLM CountLeadingZeros). */
static inline int mf_count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0) {
        return 32;
    }
    while ((x & 0x80000000u) == 0) {
        x <<= 1;
        ++n;
    }
    return n;
}

/* gemmlowp RoundingHalfSum for int32: (a + b) / 2 rounded away from zero. */
static inline int32_t mf_rounding_half_sum(int32_t a, int32_t b)
{
    const int64_t sum = (int64_t)a + (int64_t)b;
    const int64_t sign = sum >= 0 ? 1 : -1;
    return (int32_t)((sum + sign) / 2);
}

/* gemmlowp exp_on_interval_between_negative_one_quarter_and_0_excl: Q0 in, Q0 out. */
static inline int32_t mf_exp_on_interval_neg_quarter_to_0(int32_t a)
{
    const int32_t constant_term = 1895147668;   /* exp(-1/8) */
    const int32_t constant_1_over_3 = 715827883; /* 1/3 */
    const int32_t x = mf_wrap_add(a, (int32_t)1 << 28);
    const int32_t x2 = mf_srdhm(x, x);
    const int32_t x3 = mf_srdhm(x2, x);
    const int32_t x4 = mf_srdhm(x2, x2);
    const int32_t x4_over_4 = mf_saturating_rounding_mul_by_pot(x4, -2);
    const int32_t poly = mf_saturating_rounding_mul_by_pot(
        mf_wrap_add(mf_srdhm(mf_wrap_add(x4_over_4, x3), constant_1_over_3), x2), -1);
    return mf_wrap_add(constant_term, mf_srdhm(constant_term, mf_wrap_add(x, poly)));
}

/* gemmlowp exp_on_negative_values: a is Q(integer_bits), a <= 0; returns exp(a) in Q0. */
static inline int32_t mf_exp_on_negative_values(int32_t a, int integer_bits)
{
    static const int32_t multipliers[7] = {1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - integer_bits;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_one_quarter = mf_wrap_sub(a & mask, one_quarter);
    const int32_t remainder = mf_wrap_sub(a_mod_quarter_minus_one_quarter, a);
    int32_t result = mf_exp_on_interval_neg_quarter_to_0(
        mf_saturating_rounding_mul_by_pot(a_mod_quarter_minus_one_quarter, integer_bits));
    int exponent;
    for (exponent = -2; exponent <= 4; ++exponent) {
        if (integer_bits > exponent && (remainder & ((int32_t)1 << (fractional_bits + exponent))) != 0) {
            result = mf_srdhm(result, multipliers[exponent + 2]);
        }
    }
    if (integer_bits > 5 && a < -((int32_t)1 << (36 - integer_bits))) {
        result = 0;
    }
    return a == 0 ? MF_Q0_ONE : result;
}

/* Newton-Raphson 1/(1 + a) shared by the two gemmlowp helpers below; returns Q2. */
static inline int32_t mf_newton_reciprocal_q2(int32_t half_denominator)
{
    const int32_t constant_48_over_17 = 1515870810;
    const int32_t constant_neg_32_over_17 = -1010580540;
    const int32_t q2_one = (int32_t)1 << 29;
    int32_t x = mf_wrap_add(constant_48_over_17, mf_srdhm(half_denominator, constant_neg_32_over_17));
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = mf_srdhm(half_denominator, x);
        const int32_t one_minus = mf_wrap_sub(q2_one, half_denominator_times_x);
        x = mf_wrap_add(x, mf_saturating_rounding_mul_by_pot(mf_srdhm(x, one_minus), 2));
    }
    return x;
}

/* gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0 in, Q0 out. */
static inline int32_t mf_one_over_one_plus_x(int32_t a)
{
    const int32_t x = mf_newton_reciprocal_q2(mf_rounding_half_sum(a, MF_Q0_ONE));
    return mf_saturating_rounding_mul_by_pot(x, 1);
}

/* gemmlowp one_minus_x_over_one_plus_x_for_x_in_0_1: Q0 in, Q0 out. */
static inline int32_t mf_one_minus_x_over_one_plus_x(int32_t a)
{
    const int32_t x = mf_newton_reciprocal_q2(mf_rounding_half_sum(a, MF_Q0_ONE));
    return mf_saturating_rounding_mul_by_pot(mf_wrap_sub(x, (int32_t)1 << 29), 2);
}

/* gemmlowp logistic: a in Q(integer_bits), result in Q0. */
static inline int32_t mf_logistic(int32_t a, int integer_bits)
{
    int32_t abs_a;
    int32_t positive;
    if (a == 0) {
        return (int32_t)1 << 30;
    }
    abs_a = a > 0 ? a : mf_wrap_sub(0, a);
    positive = mf_one_over_one_plus_x(mf_exp_on_negative_values(mf_wrap_sub(0, abs_a), integer_bits));
    return a > 0 ? positive : mf_wrap_sub(MF_Q0_ONE, positive);
}

/* gemmlowp tanh: a in Q(integer_bits), result in Q0. */
static inline int32_t mf_tanh(int32_t a, int integer_bits)
{
    int32_t negative_abs;
    int32_t t;
    if (a == 0) {
        return 0;
    }
    negative_abs = a < 0 ? a : mf_wrap_sub(0, a);
    /* ExactMulByPot<1> keeps the raw value and adds one integer bit. */
    t = mf_one_minus_x_over_one_plus_x(mf_exp_on_negative_values(negative_abs, integer_bits + 1));
    return a < 0 ? mf_wrap_sub(0, t) : t;
}

/* TFLM GetReciprocal: 1/x for x in Q(x_integer_digits), as a Q0 scale and a shift. */
static inline int32_t mf_get_reciprocal(int32_t x, int x_integer_digits, int *num_bits_over_unit)
{
    const int headroom_plus_one = mf_count_leading_zeros((uint32_t)x);
    const uint32_t shifted = headroom_plus_one < 32 ? (uint32_t)x << headroom_plus_one : 0u;
    const int32_t shifted_minus_one = (int32_t)(shifted - ((uint32_t)1 << 31));
    *num_bits_over_unit = x_integer_digits - headroom_plus_one;
    return mf_one_over_one_plus_x(shifted_minus_one);
}

/* gemmlowp SaturatingRoundingDoublingHighMul for int16: round(a * b / 2^15), saturated. */
static inline int16_t mf_srdhm_i16(int16_t a, int16_t b)
{
    const int32_t ab = (int32_t)a * (int32_t)b;
    const int32_t nudge = ab >= 0 ? (1 << 14) : 1 - (1 << 14);
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)((ab + nudge) / (1 << 15));
}

/* TFLM SaturatingDoublingHighMul (int16, HARD_SWISH): a * b / 2^15 truncated, saturated. */
static inline int16_t mf_saturating_doubling_high_mul_i16(int16_t a, int16_t b)
{
    if (a == b && a == INT16_MIN) {
        return INT16_MAX;
    }
    return (int16_t)(((int32_t)a * (int32_t)b) / (1 << 15));
}

/* TFLM SaturatingLeftShift (int16, HARD_SWISH): value * 2^amount clamped to int16. */
static inline int16_t mf_saturating_left_shift_i16(int16_t value, int amount)
{
    const int64_t result = (int64_t)value * ((int64_t)1 << amount);
    return (int16_t)(result > INT16_MAX ? INT16_MAX : result < INT16_MIN ? INT16_MIN : result);
}

#endif /* MF_FIXEDPOINT_H */
