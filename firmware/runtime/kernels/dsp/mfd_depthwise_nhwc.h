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
 * lane into its own channel. Quad by quad, a row's pixels (border ones
 * included) run nine unrolled taps, eight instructions a tap (an input load,
 * a weight LDRD, two SXTAB16, four multiplies), against the quad's weights
 * widened once for the row into a frame with a zero ring (mfd_dw_frame); the
 * four requantizations, the packing and the clamp are one asm block with the
 * quad's constants resolved once for the row. Layers thinner than three rows
 * or columns, or padded by more than one, run the taps inside the input one
 * by one. Accumulation is modulo 2^32 like the reference's, so the order of
 * the taps does not change a bit.
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

/* Four channels' weights for the taps of one output pixel, widened once per row: a 5 x 5 frame of taps whose
 * centre 3 x 3 holds the filter and whose ring is zero. A pixel whose window overhangs the input by a row or a
 * column reads the window moved inside the input instead, and the frame shifted the other way: the taps off the
 * input meet zero weights (and add nothing, as the reference skips them), so every pixel runs the same nine
 * unrolled taps. Frame tap (i, j) holds channels c and c + 2 as int16 lanes in word 0, c + 1 and c + 3 in word 1
 * (one LDRD a tap). With them the channels' bias and requantization: multiplier, round (2^(right - 2) plus the
 * output zero point << shift, so the shift adds it: floor(v / 2^s) + z == floor((v + z * 2^s) / 2^s)) and
 * shift (right - 1), when all four take the one-step form and the zero point's shifted value cannot overflow
 * (shift <= 22: the high word stays within 2^30); otherwise `slow` and the requantization table's path. */
#define MFD_DW_FRAME 5

/* One channel's one-step requantization (mfd_requantize_one_step), four words for LDRD. */
typedef struct mfd_dw_scale {
    int32_t multiplier;
    uint32_t round; /* 2^(shift - 1) + zero point << shift */
    int32_t shift;
    int32_t unused;
} mfd_dw_scale;

typedef struct mfd_dw_frame {
    uint32_t taps[MFD_DW_FRAME * MFD_DW_FRAME][2];
    int32_t bias[4];
    mfd_dw_scale scale[4];
    uint32_t min4, max4; /* the activation range in each byte (mfd_out) */
    int32_t slow;
} mfd_dw_frame;

/* Fills q's filter taps, bias and requantization for channels c..c+3 (the ring and the activation range are
 * set by the caller). */
static inline void mfd_dw_frame_fill(const mfd_dw3x3_nhwc *p, int32_t c, mfd_dw_frame *q)
{
    const int32_t channels = p->channels;
    const int8_t *w = p->weights + c;
    const uint32_t zero_point = (uint32_t)p->out.zero_point;
    uint32_t slow = 0, *frame = q->taps[MFD_DW_FRAME + 1];
    int32_t fy, i;
    for (fy = 0; fy < 3; ++fy, w += 3 * channels, frame += 2 * MFD_DW_FRAME) {
        const uint32_t k0 = mfd_read32(w), k1 = mfd_read32(w + channels), k2 = mfd_read32(w + 2 * channels);
        frame[0] = mfd_sxtb16(k0);
        frame[1] = mfd_sxtb16_ror8(k0);
        frame[2] = mfd_sxtb16(k1);
        frame[3] = mfd_sxtb16_ror8(k1);
        frame[4] = mfd_sxtb16(k2);
        frame[5] = mfd_sxtb16_ror8(k2);
    }
    for (i = 0; i < 4; ++i) {
        const mfd_requant *r = &p->requant[c + i];
        const int32_t shift = r->right - 1;
        q->bias[i] = p->bias != NULL ? p->bias[c + i] : 0;
        q->scale[i].multiplier = r->multiplier;
        q->scale[i].shift = shift;
        /* Masked shifts: a slow channel's round is never used. */
        q->scale[i].round = (1u << ((uint32_t)(shift - 1) & 31u)) + (zero_point << ((uint32_t)shift & 31u));
        slow |= (uint32_t)(shift - 1) > 21u;
    }
    q->slow = (int32_t)slow;
}

/* acc += the nine products w * (x + offset) of channels c..c+3 of a pixel: s, its window's top-left input tap,
 * input rows `row` bytes apart and taps `c` bytes apart; w, the frame tap meeting s (rows MFD_DW_FRAME taps apart);
 * offsets, the input offset in both int16 lanes (SXTAB16 adds it while widening the input). On a DSP core one asm
 * block of thirteen registers and no spill: eight instructions a tap (one LDR, one LDRD, two SXTAB16, four
 * multiplies). */
#if defined(MFD_ASM_LOOPS)
static inline mfd_acc4 mfd_dw_taps9(mfd_acc4 acc, const int8_t *s, const uint32_t *w, int32_t row, int32_t c,
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
            "ldrd %[ke], %[ko], [%[w], #40]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #48]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c], lsl #1]\n\t"
            "ldrd %[ke], %[ko], [%[w], #56]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "add %[s], %[s], %[row]\n\t"
            "ldr %[x], [%[s]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #80]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c]]\n\t"
            "ldrd %[ke], %[ko], [%[w], #88]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]\n\t"
            "ldr %[x], [%[s], %[c], lsl #1]\n\t"
            "ldrd %[ke], %[ko], [%[w], #96]\n\t"
            "sxtab16 %[xe], %[offsets], %[x]\n\t"
            "sxtab16 %[x], %[offsets], %[x], ror #8\n\t"
            "smlabb %[a0], %[ke], %[xe], %[a0]\n\t"
            "smlatt %[a2], %[ke], %[xe], %[a2]\n\t"
            "smlabb %[a1], %[ko], %[x], %[a1]\n\t"
            "smlatt %[a3], %[ko], %[x], %[a3]"
            : [a0] "+r"(acc.a0), [a1] "+r"(acc.a1), [a2] "+r"(acc.a2), [a3] "+r"(acc.a3), [s] "+r"(s), [x] "=&r"(x),
              [xe] "=&r"(xe), [ke] "=&r"(ke), [ko] "=&r"(ko)
            : [w] "r"(w), [row] "r"(row), [c] "r"(c), [offsets] "r"(offsets)
            : "memory");
    return acc;
}
#else
static inline mfd_acc4 mfd_dw_taps9(mfd_acc4 acc, const int8_t *s, const uint32_t *w, int32_t row, int32_t c,
                                    uint32_t offsets)
{
    int32_t fy, fx;
    for (fy = 0; fy < 3; ++fy, s += row) {
        for (fx = 0; fx < 3; ++fx) {
            const uint32_t x = mfd_read32(s + (size_t)fx * c);
            const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
            const uint32_t *k = w + 2 * (fy * MFD_DW_FRAME + fx);
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

/* The four outputs of q's channels (one-step requantization, q not slow) as the bytes of one word: each
 * saturated to int8, then clamped to the activation range four at a time. On a DSP core one asm block, eight
 * instructions a channel and ten to pack and clamp. */
#if defined(MFD_ASM_LOOPS)
static inline uint32_t mfd_dw_frame_outputs(const mfd_dw_frame *q, mfd_acc4 acc)
{
    uint32_t m, r, sh, lo;
    __asm__("ldrd %[m], %[r], [%[q], #0]\n\t"
            "ldr %[sh], [%[q], #8]\n\t"
            "add %[r], %[r], %[a0], asr #31\n\t"
            "and %[lo], %[a0], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a0], %[m]\n\t"
            "asr %[a0], %[r], %[sh]\n\t"
            "ssat %[a0], #8, %[a0]\n\t"
            "ldrd %[m], %[r], [%[q], #16]\n\t"
            "ldr %[sh], [%[q], #24]\n\t"
            "add %[r], %[r], %[a1], asr #31\n\t"
            "and %[lo], %[a1], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a1], %[m]\n\t"
            "asr %[a1], %[r], %[sh]\n\t"
            "ssat %[a1], #8, %[a1]\n\t"
            "ldrd %[m], %[r], [%[q], #32]\n\t"
            "ldr %[sh], [%[q], #40]\n\t"
            "add %[r], %[r], %[a2], asr #31\n\t"
            "and %[lo], %[a2], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a2], %[m]\n\t"
            "asr %[a2], %[r], %[sh]\n\t"
            "ssat %[a2], #8, %[a2]\n\t"
            "ldrd %[m], %[r], [%[q], #48]\n\t"
            "ldr %[sh], [%[q], #56]\n\t"
            "add %[r], %[r], %[a3], asr #31\n\t"
            "and %[lo], %[a3], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a3], %[m]\n\t"
            "asr %[a3], %[r], %[sh]\n\t"
            "ssat %[a3], #8, %[a3]\n\t"
            "pkhbt %[a0], %[a0], %[a2], lsl #16\n\t"
            "pkhbt %[a1], %[a1], %[a3], lsl #16\n\t"
            "and %[a0], %[a0], #0x00FF00FF\n\t"
            "and %[a1], %[a1], #0x00FF00FF\n\t"
            "orr %[a0], %[a0], %[a1], lsl #8\n\t"
            "ldrd %[m], %[r], [%[q], #64]\n\t"
            "ssub8 %[lo], %[a0], %[m]\n\t"
            "sel %[lo], %[a0], %[m]\n\t"
            "ssub8 %[a0], %[lo], %[r]\n\t"
            "sel %[a0], %[r], %[lo]"
            : [a0] "+&r"(acc.a0), [a1] "+&r"(acc.a1), [a2] "+&r"(acc.a2), [a3] "+&r"(acc.a3), [m] "=&r"(m),
              [r] "=&r"(r), [sh] "=&r"(sh), [lo] "=&r"(lo)
            : [q] "r"(q->scale)
            : "cc", "memory");
    return (uint32_t)acc.a0;
}
#else
static inline uint32_t mfd_dw_frame_outputs(const mfd_dw_frame *q, mfd_acc4 acc)
{
    const mfd_dw_scale *k = q->scale;
    const int32_t v0 = mfd_sat8(mfd_requantize_one_step(acc.a0, k[0].multiplier, k[0].round, k[0].shift));
    const int32_t v1 = mfd_sat8(mfd_requantize_one_step(acc.a1, k[1].multiplier, k[1].round, k[1].shift));
    const int32_t v2 = mfd_sat8(mfd_requantize_one_step(acc.a2, k[2].multiplier, k[2].round, k[2].shift));
    const int32_t v3 = mfd_sat8(mfd_requantize_one_step(acc.a3, k[3].multiplier, k[3].round, k[3].shift));
    const uint32_t even = mfd_pack_bottoms((uint32_t)v0, (uint32_t)v2) & 0x00FF00FFu;
    const uint32_t odd = mfd_pack_bottoms((uint32_t)v1, (uint32_t)v3) & 0x00FF00FFu;
    return mfd_min8(mfd_max8(even | odd << 8, q->min4), q->max4);
}
#endif

/* A slow quad's outputs, through the requantization table (q: channel c's entry). */
static MFD_COLD uint32_t mfd_dw_frame_outputs_table(const mfd_requant *q, mfd_acc4 acc, mfd_out o)
{
    return mfd_outputs4(acc.a0, acc.a1, acc.a2, acc.a3, &q[0], &q[1], &q[2], &q[3], o);
}

/* The first input coordinate of a 3-tap window starting at `start`, moved inside [0, size) (size >= 3). */
static inline int32_t mfd_dw_inside(int32_t start, int32_t size)
{
    return start < 0 ? 0 : (start > size - 3 ? size - 3 : start);
}

/* Channels in fours of output row oy (out_w <= MFD_DW_FRAME_PIXELS) through the frame (mfd_dw_frame): quad by
 * quad, every pixel of the row nine unrolled taps. src_row: input row y0, the window's top row moved inside the
 * input, dy = y0 - the window's. Each pixel's input offset and frame tap are found once for the row. */
#define MFD_DW_FRAME_PIXELS 8

typedef struct mfd_dw_pixel {
    int32_t in;        /* its moved window's input byte offset from src_row */
    const uint32_t *w; /* the frame tap meeting that window's top-left tap */
} mfd_dw_pixel;

static inline void mfd_dw_frame_row(const mfd_dw3x3_nhwc *p, const int8_t *src_row, int32_t dy, int32_t out_w,
                                    int8_t *out_row)
{
    const int32_t channels = p->channels, row = p->in_w * channels, quads = channels & ~3;
    const uint32_t offsets = mfd_dup16(p->input_offset);
    const mfd_out o = p->out;
    mfd_dw_pixel pixels[MFD_DW_FRAME_PIXELS];
    mfd_dw_frame q;
    int32_t c, t, x = -p->pad_w;
    for (t = 0; t < MFD_DW_FRAME * MFD_DW_FRAME; ++t) {
        q.taps[t][0] = q.taps[t][1] = 0;
    }
    q.min4 = o.min4;
    q.max4 = o.max4;
    for (t = 0; t < out_w; ++t, x += p->stride_w) {
        const int32_t x0 = mfd_dw_inside(x, p->in_w);
        pixels[t].in = x0 * channels;
        pixels[t].w = q.taps[(1 + dy) * MFD_DW_FRAME + 1 + x0 - x];
    }
    for (c = 0; c < quads; c += 4) {
        const mfd_dw_pixel *pixel = pixels, *end = pixels + out_w;
        const int8_t *src = src_row + c;
        int8_t *dst = out_row + c;
        mfd_dw_frame_fill(p, c, &q);
        for (; pixel < end; ++pixel, dst += channels) {
            const mfd_acc4 bias = {q.bias[0], q.bias[1], q.bias[2], q.bias[3]};
            const mfd_acc4 acc = mfd_dw_taps9(bias, src + pixel->in, pixel->w, row, channels, offsets);
            mfd_write32(dst, MFD_LIKELY(!q.slow) ? mfd_dw_frame_outputs(&q, acc)
                                                 : mfd_dw_frame_outputs_table(p->requant + c, acc, o));
        }
    }
}

/* Output row oy (out_w pixels of `channels`) of a 3 x 3 depthwise layer. When every window of the row overhangs
 * the input by at most one row and one column (any valid model's padding) and the input is at least 3 x 3, the
 * frame loops; otherwise each pixel runs its taps inside the input one by one. The channels after the last four,
 * one at a time. */
static inline void mfd_dw3x3_nhwc_row(const mfd_dw3x3_nhwc *p, int32_t oy, int32_t out_w, int8_t *out_row)
{
    const int32_t channels = p->channels;
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t last_x = (out_w - 1) * p->stride_w - p->pad_w;
    int32_t fy0, fy1, ox;
    int32_t frame = p->in_h >= 3 && p->in_w >= 3 && p->pad_w <= 1 && out_w <= MFD_DW_FRAME_PIXELS;
    if (frame) {
        const int32_t y0 = mfd_dw_inside(in_y0, p->in_h);
        frame = y0 - in_y0 <= 1 && y0 - in_y0 >= -1 && mfd_dw_inside(last_x, p->in_w) - last_x >= -1;
        if (frame) {
            mfd_dw_frame_row(p, p->in + (size_t)y0 * p->in_w * channels, y0 - in_y0, out_w, out_row);
            if ((channels & 3) == 0) {
                return;
            }
        }
    }
    mfd_dw_valid(in_y0, p->in_h, &fy0, &fy1);
    for (ox = 0; ox < out_w; ++ox) {
        const int32_t in_x0 = ox * p->stride_w - p->pad_w;
        int8_t *out = out_row + (size_t)ox * channels;
        const int8_t *src = p->in;
        int32_t fx0, fx1;
        mfd_dw_valid(in_x0, p->in_w, &fx0, &fx1);
        if (fy0 < fy1 && fx0 < fx1) {
            src += ((size_t)(in_y0 + fy0) * p->in_w + (size_t)(in_x0 + fx0)) * channels;
        }
        if (!frame) {
            mfd_dw_border(p, src, fy0, fy1, fx0, fx1, out);
        }
        mfd_dw_leftover(p, src, fy0, fy1, fx0, fx1, out);
    }
}

#endif /* MFD_DEPTHWISE_NHWC_H */
