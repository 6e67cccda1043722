/*
 * Depthwise 3 x 3 convolution with depth multiplier 1 and no dilation, any
 * stride, for the DSP kernels, in NHWC: the loops for outputs narrower than
 * MFD_DW_MIN_WIDTH (DS-CNN's 5-wide maps, MobileNet's last ones), where the
 * channel-major ring of mfd_depthwise.h spends more on its per-row set-up
 * than its pairs save. Written row by row.
 *
 * Four channels come in one word of input and one of weights (NHWC and
 * 1 x 3 x 3 x C keep channels adjacent): SXTB16/SXTAB16 widen them to int16
 * lanes (the input offset added on the way), SMLABB/SMLATT accumulate each
 * lane into its own channel. A run of interior pixels widens each quad's nine
 * weight words once and then runs its nine taps unrolled, eight instructions a
 * tap (an input load, a weight LDRD, two SXTAB16, four multiplies); a border
 * pixel runs the ten-instruction tap step (weights widened in place) over the
 * taps inside the input only, as the reference skips the others. Accumulation is modulo
 * 2^32 like the reference's, so the order of the taps does not change a bit.
 */
#ifndef MFD_DEPTHWISE_NHWC_H
#define MFD_DEPTHWISE_NHWC_H

#include "mfd_dsp.h"

/* One batch of a 3 x 3, multiplier-1 depthwise layer, in plain numbers. */
typedef struct mfd_dw3x3_nhwc {
    const int8_t *in;           /* in_h x in_w x channels */
    const int8_t *weights;      /* 3 x 3 x channels */
    const int32_t *bias;        /* channels, or NULL */
    const mfd_requant *requant; /* channels */
    int32_t in_h, in_w, channels;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset; /* -input zero point, within int8 (mfd_int8_offset_ok) */
    mfd_out out;
} mfd_dw3x3_nhwc;

/* Four channels' accumulators (channels c..c+3). */
typedef struct mfd_acc4 {
    int32_t a0, a1, a2, a3;
} mfd_acc4;

/* acc += w * (x + offset), channel by channel, for one input word x and weight word w. */
static inline mfd_acc4 mfd_dw_tap(mfd_acc4 acc, uint32_t x, uint32_t w, uint32_t offsets)
{
    const uint32_t w_even = mfd_sxtb16(w), w_odd = mfd_sxtb16_ror8(w);
    const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
    acc.a0 = mfd_smlabb(w_even, x_even, acc.a0);
    acc.a2 = mfd_smlatt(w_even, x_even, acc.a2);
    acc.a1 = mfd_smlabb(w_odd, x_odd, acc.a1);
    acc.a3 = mfd_smlatt(w_odd, x_odd, acc.a3);
    return acc;
}

/* The nine taps' weights of four channels (w: tap 0's), widened once for a run of pixels: word 2t holds tap t's
 * channels c and c + 2 as int16 lanes, word 2t + 1 channels c + 1 and c + 3 (one LDRD a tap). */
static inline void mfd_dw_widen9(const int8_t *w, int32_t channels, uint32_t wide[18])
{
    int32_t tap;
    for (tap = 0; tap < 9; ++tap) {
        const uint32_t k = mfd_read32(w + (size_t)tap * channels);
        wide[2 * tap] = mfd_sxtb16(k);
        wide[2 * tap + 1] = mfd_sxtb16_ror8(k);
    }
}

/* acc += the nine products w * (x + offset) of channels c..c+3 of an interior pixel: s, its top-left input
 * tap, input rows `row` bytes apart and taps `c` bytes apart; wide, the widened weights (mfd_dw_widen9);
 * offsets, the input offset in both int16 lanes (SXTAB16 adds it while widening the input). On a DSP core
 * one asm block of thirteen registers and no spill: eight instructions a tap (one LDR, one LDRD, two
 * SXTAB16, four multiplies). */
#if defined(MFD_ASM_LOOPS)
static inline mfd_acc4 mfd_dw_taps9(mfd_acc4 acc, const int8_t *s, const uint32_t wide[18], int32_t row, int32_t c,
                                    uint32_t offsets)
{
    uint32_t x, xe, ke, ko;
    __asm__(
            "ldr %[x], [%[s]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #0]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #8]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c], lsl #1]\n\t"
            "ldrd %[ke], %[ko], [%[w], #16]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "add %[s], %[s], %[row]\n\t"
            "ldr %[x], [%[s]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #24]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #32]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c], lsl #1]\n\t"
            "ldrd %[ke], %[ko], [%[w], #40]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "add %[s], %[s], %[row]\n\t"
            "ldr %[x], [%[s]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #48]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #56]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c], lsl #1]\n\t"
            "ldrd %[ke], %[ko], [%[w], #64]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]"
            : [a0] "+r"(acc.a0), [a1] "+r"(acc.a1), [a2] "+r"(acc.a2), [a3] "+r"(acc.a3), [s] "+r"(s), [x] "=&r"(x),
              [xe] "=&r"(xe), [ke] "=&r"(ke), [ko] "=&r"(ko)
            : [w] "r"(wide), [row] "r"(row), [c] "r"(c), [offsets] "r"(offsets)
            : "memory");
    return acc;
}
#else
static inline mfd_acc4 mfd_dw_taps9(mfd_acc4 acc, const int8_t *s, const uint32_t wide[18], int32_t row, int32_t c,
                                    uint32_t offsets)
{
    int32_t fy, fx;
    for (fy = 0; fy < 3; ++fy, s += row) {
        for (fx = 0; fx < 3; ++fx) {
            const uint32_t x = mfd_read32(s + (size_t)fx * c);
            const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
            const uint32_t *k = wide + 2 * (fy * 3 + fx);
            acc.a0 = mfd_smlabb(k[0], x_even, acc.a0);
            acc.a2 = mfd_smlatt(k[0], x_even, acc.a2);
            acc.a1 = mfd_smlabb(k[1], x_odd, acc.a1);
            acc.a3 = mfd_smlatt(k[1], x_odd, acc.a3);
        }
    }
    return acc;
}
#endif

static inline mfd_acc4 mfd_dw_bias4(const int32_t *bias, int32_t c)
{
    mfd_acc4 acc = {0, 0, 0, 0};
    if (bias != NULL) {
        acc.a0 = bias[c];
        acc.a1 = bias[c + 1];
        acc.a2 = bias[c + 2];
        acc.a3 = bias[c + 3];
    }
    return acc;
}

/* Channels c..c+3 of an output pixel, in one store. */
static inline void mfd_dw_store4(const mfd_requant *q, mfd_out o, mfd_acc4 acc, int8_t *out)
{
    mfd_write32(out, mfd_outputs4(acc.a0, acc.a1, acc.a2, acc.a3, &q[0], &q[1], &q[2], &q[3], o));
}

/* Channels in fours of `pixels` interior output pixels in a row (src: the first one's input tap (0, 0);
 * out: its output), quad by quad, the quad's weights widened once for the run. */
static inline void mfd_dw_interior(const mfd_dw3x3_nhwc *p, const int8_t *src, int32_t pixels, int8_t *out)
{
    const int32_t channels = p->channels, row = p->in_w * channels, quads = channels & ~3;
    const int32_t step = p->stride_w * channels;
    const uint32_t offsets = mfd_dup16(p->input_offset);
    const mfd_out o = p->out;
    int32_t c;
    for (c = 0; c < quads; c += 4) {
        const mfd_acc4 start = mfd_dw_bias4(p->bias, c);
        const int8_t *s = src + c;
        int8_t *dst = out + c;
        uint32_t wide[18];
        int32_t i;
        mfd_dw_widen9(p->weights + c, channels, wide);
        for (i = 0; i < pixels; ++i, s += step, dst += channels) {
            mfd_dw_store4(p->requant + c, o, mfd_dw_taps9(start, s, wide, row, channels, offsets), dst);
        }
    }
}

/* Channels in fours of a border pixel whose taps inside the input are rows [fy0, fy1) x columns [fx0, fx1);
 * src: the input pixel of tap (fy0, fx0). */
static inline void mfd_dw_border(const mfd_dw3x3_nhwc *p, const int8_t *src, int32_t fy0, int32_t fy1, int32_t fx0,
                                 int32_t fx1, int8_t *out)
{
    const int32_t channels = p->channels, row = p->in_w * channels, quads = channels & ~3;
    const uint32_t offsets = mfd_dup16(p->input_offset);
    const mfd_out o = p->out;
    int32_t c;
    for (c = 0; c < quads; c += 4) {
        mfd_acc4 acc = mfd_dw_bias4(p->bias, c);
        int32_t fy;
        for (fy = fy0; fy < fy1; ++fy) {
            const int8_t *s = src + (size_t)(fy - fy0) * row + c;
            const int8_t *w = p->weights + (size_t)(fy * 3 + fx0) * channels + c;
            int32_t fx;
            for (fx = fx0; fx < fx1; ++fx, s += channels, w += channels) {
                acc = mfd_dw_tap(acc, mfd_read32(s), mfd_read32(w), offsets);
            }
        }
        mfd_dw_store4(p->requant + c, o, acc, out + c);
    }
}

/* The channels after the last four, one at a time (valid taps and src as for mfd_dw_border). */
static inline void mfd_dw_leftover(const mfd_dw3x3_nhwc *p, const int8_t *src, int32_t fy0, int32_t fy1, int32_t fx0,
                                   int32_t fx1, int8_t *out)
{
    const int32_t channels = p->channels, row = p->in_w * channels;
    int32_t c;
    for (c = channels & ~3; c < channels; ++c) {
        int32_t acc = p->bias != NULL ? p->bias[c] : 0;
        int32_t fy;
        for (fy = fy0; fy < fy1; ++fy) {
            int32_t fx;
            for (fx = fx0; fx < fx1; ++fx) {
                const int32_t x = src[(size_t)(fy - fy0) * row + (size_t)(fx - fx0) * channels + c];
                acc = mf_wrap_add(acc, p->weights[(size_t)(fy * 3 + fx) * channels + c] * (x + p->input_offset));
            }
        }
        out[c] = mfd_output_of(acc, &p->requant[c], p->out);
    }
}

/* The taps [*first, *end) of a 3-tap filter axis starting at input coordinate `start` that land inside [0, size). */
static inline void mfd_dw_valid(int32_t start, int32_t size, int32_t *first, int32_t *end)
{
    const int32_t last = size - start < 3 ? size - start : 3;
    *first = start < 0 ? (-start < 3 ? -start : 3) : 0;
    *end = last > *first ? last : *first;
}

/* Output row oy (out_w pixels of `channels`) of a 3 x 3 depthwise layer: the interior pixels (all nine taps
 * inside the input), [ox0, ox1), as one run; the border ones one by one. */
static inline void mfd_dw3x3_nhwc_row(const mfd_dw3x3_nhwc *p, int32_t oy, int32_t out_w, int8_t *out_row)
{
    const int32_t channels = p->channels;
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t last_x0 = p->in_w - 3 + p->pad_w; /* interior: 0 <= ox * stride_w - pad_w <= in_w - 3 */
    int32_t fy0, fy1, ox, ox0 = out_w, ox1 = out_w;
    mfd_dw_valid(in_y0, p->in_h, &fy0, &fy1);
    if (fy1 - fy0 == 3 && last_x0 >= 0) {
        ox0 = (p->pad_w + p->stride_w - 1) / p->stride_w;
        ox1 = last_x0 / p->stride_w + 1;
        ox1 = ox1 < out_w ? ox1 : out_w;
        ox0 = ox0 < ox1 ? ox0 : ox1;
    }
    for (ox = 0; ox < out_w; ++ox) {
        const int32_t in_x0 = ox * p->stride_w - p->pad_w;
        int8_t *out = out_row + (size_t)ox * channels;
        const int8_t *src = p->in;
        int32_t fx0, fx1;
        if (ox == ox0 && ox0 < ox1) {
            src += ((size_t)in_y0 * p->in_w + (size_t)in_x0) * channels;
            mfd_dw_interior(p, src, ox1 - ox0, out);
            for (; ox < ox1; ++ox, src += (size_t)p->stride_w * channels, out += channels) {
                mfd_dw_leftover(p, src, 0, 3, 0, 3, out);
            }
            --ox;
            continue;
        }
        mfd_dw_valid(in_x0, p->in_w, &fx0, &fx1);
        if (fy0 < fy1 && fx0 < fx1) {
            src += ((size_t)(in_y0 + fy0) * p->in_w + (size_t)(in_x0 + fx0)) * channels;
        }
        mfd_dw_border(p, src, fy0, fy1, fx0, fx1, out);
        mfd_dw_leftover(p, src, fy0, fy1, fx0, fx1, out);
    }
}

#endif /* MFD_DEPTHWISE_NHWC_H */
