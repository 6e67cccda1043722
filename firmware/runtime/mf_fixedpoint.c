/* The out-of-line part of mf_fixedpoint.h. */
#include <string.h>

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

/* A positive finite float as mantissa * 2^exponent, the mantissa in [2^23, 2^24); 0 if zero or not finite. */
static int mf_float_parts(float f, uint32_t *mantissa, int *exponent)
{
    uint32_t bits;
    int biased;
    memcpy(&bits, &f, sizeof bits);
    biased = (int)((bits >> 23) & 0xFFu);
    *mantissa = bits & 0x7FFFFFu;
    if ((bits >> 31) != 0 || biased == 0xFF || (biased == 0 && *mantissa == 0)) {
        return 0;
    }
    if (biased == 0) {
        *exponent = -149;
        while (*mantissa < (1u << 23)) {
            *mantissa <<= 1;
            --*exponent;
        }
    } else {
        *mantissa |= 1u << 23;
        *exponent = biased - 150;
    }
    return 1;
}

mf_requant mf_requant_of_scales(float input, float filter, float output)
{
    mf_requant q = {0, 0, 0};
    uint32_t m_in, m_filter, m_out;
    int e_in, e_filter, e_out;
    uint64_t product;
    uint64_t quotient = 0; /* (m_in * m_filter / m_out) * 2^32, truncated */
    uint64_t m53;
    uint64_t rest;
    uint64_t half;
    uint32_t remainder = 0;
    int top = 54;
    int drop;
    int exponent;
    int step;
    if (!mf_float_parts(input, &m_in, &e_in) || !mf_float_parts(filter, &m_filter, &e_filter) ||
        !mf_float_parts(output, &m_out, &e_out)) {
        return q; /* a zero (or unusable) scale: TFLM's real is 0 or not below 2^31 */
    }
    product = (uint64_t)m_in * m_filter; /* exact, as the double product is: [2^46, 2^48) */
    for (step = 0; step < 10; ++step) {  /* 8 quotient bits per step: 6 from the product, 4 fraction steps */
        const uint32_t next = step < 6 ? (uint32_t)(product >> (40 - 8 * step)) & 0xFFu : 0u;
        const uint32_t numerator = (remainder << 8) | next;
        quotient = (quotient << 8) | (numerator / m_out);
        remainder = numerator % m_out;
    }
    while ((quotient >> (top + 1)) != 0) { /* the quotient is in [2^22, 2^25): its top bit is 54..56 */
        ++top;
    }
    drop = top - 52;
    m53 = quotient >> drop; /* the double's 53-bit significand, rounded to nearest even */
    rest = quotient & ((UINT64_C(1) << drop) - 1u);
    half = UINT64_C(1) << (drop - 1);
    if (rest > half || (rest == half && (remainder != 0 || (m53 & 1u) != 0))) {
        ++m53;
        if (m53 == (UINT64_C(1) << 53)) {
            m53 >>= 1;
            ++top;
        }
    }
    exponent = top - 31 + e_in + e_filter - e_out; /* frexp's: real = m53 / 2^53 * 2^exponent */
    if (exponent >= 32) {
        return q;
    }
    m53 = (m53 + (UINT64_C(1) << 21)) >> 22; /* round(q * 2^31), half away from zero */
    if (m53 == (UINT64_C(1) << 31)) {
        m53 >>= 1;
        ++exponent;
    }
    if (exponent < -31) {
        return q;
    }
    q.multiplier = (int32_t)m53;
    q.left = (int16_t)(exponent > 0 ? exponent : 0);
    q.right = (int16_t)(exponent > 0 ? 0 : -exponent);
    return q;
}
