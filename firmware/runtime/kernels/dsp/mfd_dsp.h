/*
 * Shared by the DSP kernels (kernels/dsp/): the ACLE SIMD intrinsics they use,
 * and a requantization step with its parameters computed once per channel.
 *
 * On a core with the DSP extension (__ARM_FEATURE_DSP: M4, M7, M33, M55) the
 * helpers are the single instructions of arm_acle.h. Elsewhere (the host test
 * build) they are exact C equivalents, so the same kernels also run, slowly,
 * next to TFLM's host interpreter. Lanes: a 32-bit word holds two int16
 * lanes, "bottom" (bits 0-15) and "top" (bits 16-31).
 */
#ifndef MFD_DSP_H
#define MFD_DSP_H

#include <stdint.h>
#include <string.h>

#include "mf_kernel.h"

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
#endif

/* The firmware is built -ffreestanding, where GCC calls memcpy instead of
 * emitting one load; the builtin is a single (unaligned-capable) LDR/STR. */
#if defined(__GNUC__)
#define MFD_MEMCPY __builtin_memcpy
#else
#define MFD_MEMCPY memcpy
#endif

/* The hand-scheduled asm loops (mfd_gemm.h, mfd_depthwise.h) need twelve or thirteen free registers: GCC
 * gives them when optimizing, not at -O0 (frame pointer kept), where the C loops run instead. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && defined(__OPTIMIZE__)
#define MFD_ASM_LOOPS 1
#endif

/* A branch the compiler should lay out as the fall-through path; a function kept out of line, off it (and
 * not reported where a kernel does not call it). */
#if defined(__GNUC__)
#define MFD_LIKELY(x) __builtin_expect(!!(x), 1)
#define MFD_COLD __attribute__((noinline, cold, unused))
#else
#define MFD_LIKELY(x) (x)
#define MFD_COLD
#endif

/* Four int8 (or two int16) from memory with no alignment promise. */
static inline uint32_t mfd_read32(const void *p)
{
    uint32_t v;
    MFD_MEMCPY(&v, p, sizeof v);
    return v;
}

static inline void mfd_write32(void *p, uint32_t v) { MFD_MEMCPY(p, &v, sizeof v); }
static inline void mfd_write16(void *p, uint16_t v) { MFD_MEMCPY(p, &v, sizeof v); }

#if defined(__ARM_FEATURE_DSP)
/* Bytes 0 and 2 sign-extended to the two int16 lanes. */
static inline uint32_t mfd_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }
/* a + bytes 0 and 2 of x, lane by lane (modulo 2^16). */
static inline uint32_t mfd_sxtab16(uint32_t a, uint32_t x) { return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x); }
/* Bytes 1 and 3, in one instruction (GCC does not fold a rotate into the intrinsic). */
static inline uint32_t mfd_sxtb16_ror8(uint32_t x)
{
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}
static inline uint32_t mfd_sxtab16_ror8(uint32_t a, uint32_t x)
{
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}
/* acc + a.bottom * b.bottom + a.top * b.top (modulo 2^32). */
static inline int32_t mfd_smlad(uint32_t a, uint32_t b, int32_t acc) { return __smlad((int16x2_t)a, (int16x2_t)b, acc); }
static inline int32_t mfd_smlabb(uint32_t a, uint32_t b, int32_t acc) { return __smlabb((int32_t)a, (int32_t)b, acc); }
static inline int32_t mfd_smlatt(uint32_t a, uint32_t b, int32_t acc) { return __smlatt((int32_t)a, (int32_t)b, acc); }
static inline int32_t mfd_smlabt(uint32_t a, uint32_t b, int32_t acc) { return __smlabt((int32_t)a, (int32_t)b, acc); }
static inline int32_t mfd_smlatb(uint32_t a, uint32_t b, int32_t acc) { return __smlatb((int32_t)a, (int32_t)b, acc); }
/* (a.bottom, b.bottom) and (a.top, b.top) as (bottom, top) lanes: PKHBT and PKHTB. */
static inline uint32_t mfd_pack_bottoms(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static inline uint32_t mfd_pack_tops(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* The high word of a * b + (high:low), one SMLAL (GCC may otherwise build the 64-bit sum from UMULL and MLAs). */
static inline int32_t mfd_smlal_high(int32_t a, int32_t b, uint32_t high, uint32_t low)
{
    __asm__("smlal %0, %1, %2, %3" : "+r"(low), "+r"(high) : "r"(a), "r"(b));
    return (int32_t)high;
}
/* x saturated to int8. */
static inline int32_t mfd_sat8(int32_t x) { return __ssat(x, 8); }
/* Byte by byte (signed): the larger, the smaller. SEL reads the GE flags SSUB8 sets: one asm block keeps
 * them together. */
static inline uint32_t mfd_max8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %1, %2" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
static inline uint32_t mfd_min8(uint32_t a, uint32_t b)
{
    uint32_t r;
    __asm__("ssub8 %0, %1, %2\n\tsel %0, %2, %1" : "=&r"(r) : "r"(a), "r"(b) : "cc");
    return r;
}
#else
static inline int32_t mfd_lane(uint32_t x, int top) { return (int32_t)(int16_t)(uint16_t)(top ? x >> 16 : x); }
static inline uint32_t mfd_lanes(int32_t bottom, int32_t top) { return ((uint32_t)bottom & 0xFFFFu) | ((uint32_t)top << 16); }
static inline uint32_t mfd_sxtb16(uint32_t x) { return mfd_lanes((int8_t)(uint8_t)x, (int8_t)(uint8_t)(x >> 16)); }
static inline uint32_t mfd_sxtab16(uint32_t a, uint32_t x)
{
    return mfd_lanes(mfd_lane(a, 0) + (int8_t)(uint8_t)x, mfd_lane(a, 1) + (int8_t)(uint8_t)(x >> 16));
}
static inline uint32_t mfd_ror8(uint32_t x) { return (x >> 8) | (x << 24); }
static inline uint32_t mfd_sxtb16_ror8(uint32_t x) { return mfd_sxtb16(mfd_ror8(x)); }
static inline uint32_t mfd_sxtab16_ror8(uint32_t a, uint32_t x) { return mfd_sxtab16(a, mfd_ror8(x)); }
static inline int32_t mfd_smlad(uint32_t a, uint32_t b, int32_t acc)
{
    return mf_wrap_add(mf_wrap_add(acc, mfd_lane(a, 0) * mfd_lane(b, 0)), mfd_lane(a, 1) * mfd_lane(b, 1));
}
static inline int32_t mfd_smlabb(uint32_t a, uint32_t b, int32_t acc) { return mf_wrap_add(acc, mfd_lane(a, 0) * mfd_lane(b, 0)); }
static inline int32_t mfd_smlatt(uint32_t a, uint32_t b, int32_t acc) { return mf_wrap_add(acc, mfd_lane(a, 1) * mfd_lane(b, 1)); }
static inline int32_t mfd_smlabt(uint32_t a, uint32_t b, int32_t acc) { return mf_wrap_add(acc, mfd_lane(a, 0) * mfd_lane(b, 1)); }
static inline int32_t mfd_smlatb(uint32_t a, uint32_t b, int32_t acc) { return mf_wrap_add(acc, mfd_lane(a, 1) * mfd_lane(b, 0)); }
static inline uint32_t mfd_pack_bottoms(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
static inline uint32_t mfd_pack_tops(uint32_t a, uint32_t b) { return (a >> 16) | (b & 0xFFFF0000u); }
static inline int32_t mfd_smlal_high(int32_t a, int32_t b, uint32_t high, uint32_t low)
{
    return (int32_t)(((int64_t)a * b + (int64_t)((uint64_t)high << 32 | low)) >> 32);
}
static inline int32_t mfd_sat8(int32_t x) { return mf_clamp_i32(x, INT8_MIN, INT8_MAX); }
static inline int32_t mfd_byte(uint32_t x, int i) { return (int8_t)(uint8_t)(x >> (8 * i)); }
static inline uint32_t mfd_max8(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        r |= (uint32_t)(uint8_t)mf_max_i32(mfd_byte(a, i), mfd_byte(b, i)) << (8 * i);
    }
    return r;
}
static inline uint32_t mfd_min8(uint32_t a, uint32_t b)
{
    uint32_t r = 0;
    int i;
    for (i = 0; i < 4; ++i) {
        r |= (uint32_t)(uint8_t)mf_min_i32(mfd_byte(a, i), mfd_byte(b, i)) << (8 * i);
    }
    return r;
}
#endif

/* A zero point whose offset keeps every int8 value plus offset inside int16
 * lanes; any other (no valid int8 model has one) takes the portable loop. */
static inline int mfd_int8_offset_ok(int32_t zero_point) { return zero_point >= INT8_MIN && zero_point <= INT8_MAX; }

/* An int16 value in both lanes (the offsets added by mfd_sxtab16), and back. */
static inline uint32_t mfd_dup16(int32_t v) { return ((uint32_t)v & 0xFFFFu) * 0x00010001u; }
static inline int32_t mfd_lane_value(uint32_t lanes) { return (int32_t)(int16_t)(uint16_t)lanes; }

/* One channel's output scale as TFLM's QuantizeMultiplier gives it, its
 * shift split once into the left shift before and the right shift after the
 * multiply (one of them is 0). */
typedef struct mfd_requant {
    int32_t multiplier;
    int16_t left;
    int16_t right;
} mfd_requant;

/* mf_quantize_multiplier, bit for bit, from the double's bits instead of the
 * soft-float frexp and round (the per-channel scales are recomputed on every
 * inference: the engine keeps no per-op state). A positive normal `real`
 * below 2^31 is m * 2^(e - 1075) with a 53-bit m, so frexp gives m / 2^53
 * and round(m / 2^53 * 2^31) is (m + 2^21) >> 22; other values take the
 * portable function. */
static inline void mfd_quantize_multiplier(double real, int32_t *multiplier, int *shift)
{
    uint64_t bits;
    uint64_t fixed;
    int exponent;
    MFD_MEMCPY(&bits, &real, sizeof bits);
    exponent = (int)((bits >> 52) & 0x7FFu) - 1022;
    if ((bits >> 63) != 0 || exponent == -1022 || exponent > 31) {
        mf_quantize_multiplier(real, multiplier, shift);
        return;
    }
    fixed = (((bits & ((UINT64_C(1) << 52) - 1u)) | (UINT64_C(1) << 52)) + (UINT64_C(1) << 21)) >> 22;
    if (fixed == (UINT64_C(1) << 31)) {
        fixed >>= 1;
        ++exponent;
    }
    if (exponent < -31) {
        exponent = 0;
        fixed = 0;
    }
    *multiplier = (int32_t)fixed;
    *shift = exponent;
}

static inline mfd_requant mfd_requant_for(const mf_tensor *input, const mf_tensor *filter, int32_t channel,
                                          const mf_tensor *output)
{
    mfd_requant q;
    int shift;
    mfd_quantize_multiplier((double)input->scale * (double)mf_tensor_scale_at(filter, channel) / (double)output->scale,
                            &q.multiplier, &shift);
    q.left = (int16_t)(shift > 0 ? shift : 0);
    q.right = (int16_t)(shift > 0 ? 0 : -shift);
    return q;
}

/* mf_mul_by_quantized_multiplier, bit for bit, in fewer instructions.
 *
 * The reference rounds twice: high = floor((a*m + 2^30) / 2^31) (equal to
 * gemmlowp's round-half-away doubling high multiply for every a and m except
 * a == m == INT32_MIN, and m is never negative), then high / 2^e rounded half
 * away from zero, i.e. floor((high + 2^(e-1) - [high < 0]) / 2^e). Nested
 * floors of integer divisions merge: with e >= 2 the whole is the high word
 * of a*m + 2^30 - [a < 0] * 2^31 + 2^(30+e), shifted right by e - 1: one
 * SMLAL from a preset 64-bit accumulator and one shift. ([a < 0] may stand
 * for [high < 0]: they differ only when high is 0, and both then give 0.)
 * Right shifts of 0 or 1 (multipliers of 0.25 and up, rare) take the two-step
 * form. */
static MFD_COLD int32_t mfd_requantize_two_step(int32_t acc, mfd_requant q)
{
    const int64_t product = (int64_t)mf_wrap_shl(acc, q.left) * q.multiplier + ((int64_t)1 << 30);
    const int32_t high = (int32_t)(product >> 31);
    const int32_t mask = (int32_t)((1u << q.right) - 1u);
    const int32_t threshold = (mask >> 1) + (high < 0 ? 1 : 0);
    return (high >> q.right) + ((high & mask) > threshold ? 1 : 0);
}

/* The one-step form's constants of a channel whose right shift is 2 or more, derived once for all the
 * accumulators of that channel a loop requantizes. */
typedef struct mfd_one_step {
    int32_t multiplier;
    uint32_t round; /* 2^(right - 2), plus the output zero point << shift where a loop folds it in */
    int32_t shift;  /* right - 1 */
} mfd_one_step;

/* The rounding term of shift `shift` (right - 1) with `zero_point` added to the result through it
 * (floor(v / 2^s) + z == floor((v + z * 2^s) / 2^s)); zero_point 0: the plain term. */
static inline uint32_t mfd_one_step_round(int32_t shift, uint32_t zero_point)
{
    return (1u << (shift - 1)) + (zero_point << shift);
}

/* Whether a right shift lets the one-step form also add the output zero point through its rounding term:
 * 2 to 23, where the high word stays within 2^30 and the zero point shifted in within 2^29, so nothing
 * overflows. */
static inline int mfd_one_step_folds(int32_t right) { return right >= 2 && right <= 23; }

/* A channel's constants with the output zero point folded in (right shifts mfd_one_step_folds accepts; 0:
 * the plain form's, for any right shift of 2 or more). */
static inline mfd_one_step mfd_one_step_of(const mfd_requant *q, int32_t zero_point)
{
    mfd_one_step k;
    k.multiplier = q->multiplier;
    k.shift = q->right - 1;
    k.round = mfd_one_step_round(k.shift, (uint32_t)zero_point);
    return k;
}

/* The one-step form (right >= 2). */
static inline int32_t mfd_requantize_one_step(int32_t acc, mfd_one_step k)
{
    return mfd_smlal_high(acc, k.multiplier, k.round + (uint32_t)(acc >> 31), ((uint32_t)acc & 0x80000000u) | 0x40000000u) >>
           k.shift;
}

static inline int32_t mfd_requantize(int32_t acc, const mfd_requant *q)
{
    const int32_t right = q->right;
    if (MFD_LIKELY(right >= 2)) {
        return mfd_requantize_one_step(acc, mfd_one_step_of(q, 0));
    }
    return mfd_requantize_two_step(acc, *q);
}

/* The int8 output value of an accumulator (bias included). */
static inline int8_t mfd_output(int32_t acc, const mfd_requant *q, int32_t zero_point, int32_t act_min, int32_t act_max)
{
    return (int8_t)mf_clamp_i32(mf_wrap_add(mfd_requantize(acc, q), zero_point), act_min, act_max);
}

/* A layer's output side, passed by value so that the int8 stores (which may
 * alias anything) do not make the compiler reload it for every value. */
typedef struct mfd_out {
    int32_t zero_point, act_min, act_max;
    uint32_t min4, max4; /* act_min, act_max in each byte */
} mfd_out;

static inline mfd_out mfd_out_for(int32_t zero_point, int32_t act_min, int32_t act_max)
{
    mfd_out o;
    o.zero_point = zero_point;
    o.act_min = act_min;
    o.act_max = act_max;
    o.min4 = (uint32_t)(uint8_t)act_min * 0x01010101u;
    o.max4 = (uint32_t)(uint8_t)act_max * 0x01010101u;
    return o;
}

static inline int8_t mfd_output_of(int32_t acc, const mfd_requant *q, mfd_out o)
{
    return mfd_output(acc, q, o.zero_point, o.act_min, o.act_max);
}

/* Four outputs as the bytes of one word (byte i from a_i and q_i): each saturated to int8, then clamped to
 * the activation range four at a time (the clamp of a saturated value equals the reference's clamp). */
/* Four requantized values plus the zero point as the bytes of one word (byte i from r_i): each saturated to int8,
 * then clamped to the activation range four at a time (the clamp of a saturated value equals the reference's). */
static inline uint32_t mfd_clamp4(int32_t r0, int32_t r1, int32_t r2, int32_t r3, mfd_out o)
{
    const uint32_t v0 = (uint32_t)mfd_sat8(mf_wrap_add(r0, o.zero_point));
    const uint32_t v1 = (uint32_t)mfd_sat8(mf_wrap_add(r1, o.zero_point));
    const uint32_t v2 = (uint32_t)mfd_sat8(mf_wrap_add(r2, o.zero_point));
    const uint32_t v3 = (uint32_t)mfd_sat8(mf_wrap_add(r3, o.zero_point));
    const uint32_t even = ((v0 & 0xFFFFu) | v2 << 16) & 0x00FF00FFu;
    const uint32_t odd = ((v1 & 0xFFFFu) | v3 << 16) & 0x00FF00FFu;
    return mfd_min8(mfd_max8(even | odd << 8, o.min4), o.max4);
}

static inline uint32_t mfd_outputs4(int32_t a0, int32_t a1, int32_t a2, int32_t a3, const mfd_requant *q0,
                                    const mfd_requant *q1, const mfd_requant *q2, const mfd_requant *q3, mfd_out o)
{
    return mfd_clamp4(mfd_requantize(a0, q0), mfd_requantize(a1, q1), mfd_requantize(a2, q2), mfd_requantize(a3, q3), o);
}

/* Four consecutive channels' outputs. */
static inline void mfd_store4(int8_t *out, const int32_t acc[4], const mfd_requant *requant, int32_t zero_point,
                              int32_t act_min, int32_t act_max)
{
    out[0] = mfd_output(acc[0], &requant[0], zero_point, act_min, act_max);
    out[1] = mfd_output(acc[1], &requant[1], zero_point, act_min, act_max);
    out[2] = mfd_output(acc[2], &requant[2], zero_point, act_min, act_max);
    out[3] = mfd_output(acc[3], &requant[3], zero_point, act_min, act_max);
}

#endif /* MFD_DSP_H */
