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
 * quad's constants resolved once for the row. Only layers the frame fits
 * come here (mfd_dw3x3_nhwc_fits, mfd_one_step_folds: prepare checks them
 * once and sends the others to the channel-major loops), so the loops carry
 * no fallback. Accumulation is modulo 2^32 like the reference's, so the order
 * of the taps does not change a bit.
 */
#ifndef MFD_DEPTHWISE_NHWC_H
#define MFD_DEPTHWISE_NHWC_H

#include "mfd_dsp.h"

/* Out of line, and on Armv8.1-M (Cortex-M55) not a low-overhead loop: GCC would keep LR for the loop count, and the
 * taps' asm block needs thirteen registers beside the loop's (at -Os it then fails: impossible constraints). */
#if defined(__GNUC__) && !defined(__clang__)
#define MFD_DW_NOINLINE __attribute__((noinline, optimize("no-branch-count-reg")))
#elif defined(__GNUC__)
#define MFD_DW_NOINLINE __attribute__((noinline))
#else
#define MFD_DW_NOINLINE
#endif

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

/* Four channels' weights for the taps of one output pixel, widened once per row: a 5 x 5 frame of taps whose
 * centre 3 x 3 holds the filter and whose ring is zero. A pixel whose window overhangs the input by a row or a
 * column reads the window moved inside the input instead, and the frame shifted the other way: the taps off the
 * input meet zero weights (and add nothing, as the reference skips them), so every pixel runs the same nine
 * unrolled taps. Frame tap (i, j) holds channels c and c + 2 as int16 lanes in word 0, c + 1 and c + 3 in word 1
 * (one LDRD a tap). */
#define MFD_DW_FRAME 5

typedef uint32_t mfd_dw_frame[MFD_DW_FRAME * MFD_DW_FRAME][2];

/* Widens channels c..c+3 of the filter into the frame's centre. */
static inline void mfd_dw_frame_fill(const mfd_dw3x3_nhwc *p, int32_t c, mfd_dw_frame frame)
{
    const int32_t channels = p->channels;
    const int8_t *w = p->weights + c;
    uint32_t *tap = frame[MFD_DW_FRAME + 1];
    int32_t fy;
    for (fy = 0; fy < 3; ++fy, w += 3 * channels, tap += 2 * MFD_DW_FRAME) {
        const uint32_t k0 = mfd_read32(w), k1 = mfd_read32(w + channels), k2 = mfd_read32(w + 2 * channels);
        tap[0] = mfd_sxtb16(k0);
        tap[1] = mfd_sxtb16_ror8(k0);
        tap[2] = mfd_sxtb16(k1);
        tap[3] = mfd_sxtb16_ror8(k1);
        tap[4] = mfd_sxtb16(k2);
        tap[5] = mfd_sxtb16_ror8(k2);
    }
}

/* A quad's bias, requantization and activation range (the asm block of mfd_dw_outputs reads them at fixed
 * offsets: scale at 16, range at 64). Resolved once a layer for its first MFD_DW_CACHED_QUADS quads, once a row
 * for the others. */
#define MFD_DW_CACHED_QUADS 16

typedef struct mfd_dw_consts {
    int32_t bias[4];
    mfd_one_step scale[4]; /* the output zero point in the rounding (mfd_one_step_round) */
    uint32_t min4, max4;
} mfd_dw_consts;

static inline void mfd_dw_consts_fill(const mfd_dw3x3_nhwc *p, int32_t c, mfd_dw_consts *k)
{
    const uint32_t zero_point = (uint32_t)p->out.zero_point;
    int32_t i;
    for (i = 0; i < 4; ++i) {
        const mfd_requant *r = &p->requant[c + i];
        const int32_t shift = r->right - 1;
        k->bias[i] = p->bias != NULL ? p->bias[c + i] : 0;
        k->scale[i].multiplier = r->multiplier;
        k->scale[i].shift = shift;
        k->scale[i].round = mfd_one_step_round(shift, zero_point);
    }
    k->min4 = p->out.min4;
    k->max4 = p->out.max4;
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

/* The four outputs of k's channels as the bytes of one word: each
 * saturated to int8, then clamped to the activation range four at a time. On a DSP core one asm block, eight
 * instructions a channel and ten to pack and clamp. */
#if defined(MFD_ASM_LOOPS)
static inline uint32_t mfd_dw_outputs(const mfd_dw_consts *k, mfd_acc4 acc)
{
    uint32_t m, r, sh, lo;
    __asm__("ldrd %[m], %[r], [%[k], #16]\n\t"
            "ldr %[sh], [%[k], #24]\n\t"
            "add %[r], %[r], %[a0], asr #31\n\t"
            "and %[lo], %[a0], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a0], %[m]\n\t"
            "asr %[a0], %[r], %[sh]\n\t"
            "ssat %[a0], #8, %[a0]\n\t"
            "ldrd %[m], %[r], [%[k], #28]\n\t"
            "ldr %[sh], [%[k], #36]\n\t"
            "add %[r], %[r], %[a1], asr #31\n\t"
            "and %[lo], %[a1], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a1], %[m]\n\t"
            "asr %[a1], %[r], %[sh]\n\t"
            "ssat %[a1], #8, %[a1]\n\t"
            "ldrd %[m], %[r], [%[k], #40]\n\t"
            "ldr %[sh], [%[k], #48]\n\t"
            "add %[r], %[r], %[a2], asr #31\n\t"
            "and %[lo], %[a2], #0x80000000\n\t"
            "orr %[lo], %[lo], #0x40000000\n\t"
            "smlal %[lo], %[r], %[a2], %[m]\n\t"
            "asr %[a2], %[r], %[sh]\n\t"
            "ssat %[a2], #8, %[a2]\n\t"
            "ldrd %[m], %[r], [%[k], #52]\n\t"
            "ldr %[sh], [%[k], #60]\n\t"
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
            "ldrd %[m], %[r], [%[k], #64]\n\t"
            "ssub8 %[lo], %[a0], %[m]\n\t"
            "sel %[lo], %[a0], %[m]\n\t"
            "ssub8 %[a0], %[lo], %[r]\n\t"
            "sel %[a0], %[r], %[lo]"
            : [a0] "+&r"(acc.a0), [a1] "+&r"(acc.a1), [a2] "+&r"(acc.a2), [a3] "+&r"(acc.a3), [m] "=&r"(m),
              [r] "=&r"(r), [sh] "=&r"(sh), [lo] "=&r"(lo)
            : [k] "r"(k)
            : "cc", "memory");
    return (uint32_t)acc.a0;
}
#else
static inline uint32_t mfd_dw_outputs(const mfd_dw_consts *k, mfd_acc4 acc)
{
    const int32_t v0 = mfd_sat8(mfd_requantize_one_step(acc.a0, k->scale[0]));
    const int32_t v1 = mfd_sat8(mfd_requantize_one_step(acc.a1, k->scale[1]));
    const int32_t v2 = mfd_sat8(mfd_requantize_one_step(acc.a2, k->scale[2]));
    const int32_t v3 = mfd_sat8(mfd_requantize_one_step(acc.a3, k->scale[3]));
    const uint32_t even = mfd_pack_bottoms((uint32_t)v0, (uint32_t)v2) & 0x00FF00FFu;
    const uint32_t odd = mfd_pack_bottoms((uint32_t)v1, (uint32_t)v3) & 0x00FF00FFu;
    return mfd_min8(mfd_max8(even | odd << 8, k->min4), k->max4);
}
#endif

/* The first input coordinate of a 3-tap window starting at `start`, moved inside [0, size) (size >= 3). */
static inline int32_t mfd_dw_moved(int32_t start, int32_t size)
{
    return start < 0 ? 0 : (start > size - 3 ? size - 3 : start);
}

/* Channels in fours of output row oy (out_w <= MFD_DW_FRAME_PIXELS) through the frame: quad by quad, every pixel
 * of the row nine unrolled taps. y0: the windows' top row moved inside the input (at most one row off); each
 * pixel's moved input window and frame tap are found once for the row. */
#define MFD_DW_FRAME_PIXELS 8

typedef struct mfd_dw_pixel {
    int32_t in;        /* its moved window's input byte offset from row y0 */
    const uint32_t *w; /* the frame tap meeting that window's top-left tap */
} mfd_dw_pixel;

/* Channels c..c+3 of a row's pixels [pixel, end) (src, dst: channel c of row y0 and of the output row), kept out
 * of line so that the taps' thirteen registers are free. */
static MFD_DW_NOINLINE void mfd_dw_quad_row(const mfd_dw_consts *k, const int8_t *src, const mfd_dw_pixel *pixel,
                                            int32_t count, int8_t *dst, int32_t row, int32_t channels,
                                            uint32_t offsets)
{
    do {
        mfd_acc4 acc;
        acc.a0 = k->bias[0];
        acc.a1 = k->bias[1];
        acc.a2 = k->bias[2];
        acc.a3 = k->bias[3];
        acc = mfd_dw_taps9(acc, src + pixel->in, pixel->w, row, channels, offsets);
        mfd_write32(dst, mfd_dw_outputs(k, acc));
        ++pixel;
        dst += channels;
    } while (--count > 0);
}

static inline void mfd_dw_frame_row(const mfd_dw3x3_nhwc *p, const mfd_dw_consts *cached, int32_t oy, int32_t y0,
                                    int32_t out_w, int8_t *out_row)
{
    const int32_t channels = p->channels, row = p->in_w * channels, quads = channels >> 2;
    const int32_t dy = y0 - (oy * p->stride_h - p->pad_h);
    const uint32_t offsets = mfd_dup16(p->input_offset);
    const int8_t *src_row = p->in + (size_t)y0 * row;
    mfd_dw_pixel pixels[MFD_DW_FRAME_PIXELS];
    mfd_dw_frame frame;
    mfd_dw_consts row_consts;
    int32_t quad, t, x = -p->pad_w;
    for (t = 0; t < MFD_DW_FRAME * MFD_DW_FRAME; ++t) {
        frame[t][0] = frame[t][1] = 0;
    }
    for (t = 0; t < out_w; ++t, x += p->stride_w) {
        const int32_t x0 = mfd_dw_moved(x, p->in_w);
        pixels[t].in = x0 * channels;
        pixels[t].w = frame[(1 + dy) * MFD_DW_FRAME + 1 + x0 - x];
    }
    for (quad = 0; quad < quads; ++quad) {
        const int32_t c = 4 * quad;
        const mfd_dw_consts *k = &row_consts;
        if (quad < MFD_DW_CACHED_QUADS) {
            k = &cached[quad];
        } else {
            mfd_dw_consts_fill(p, c, &row_consts);
        }
        mfd_dw_frame_fill(p, c, frame);
        mfd_dw_quad_row(k, src_row + c, pixels, out_w, out_row + c, row, channels, offsets);
    }
}

/* Whether a layer's shape fits the frame loops (p's shape fields only): channels in fours, an input at least 3 x 3,
 * 1 to MFD_DW_FRAME_PIXELS output columns, and every window overhanging the input by at most one row and one
 * column (any valid model's padding; the first and last windows overhang the most). */
static inline int mfd_dw3x3_nhwc_fits(const mfd_dw3x3_nhwc *p, int32_t out_h, int32_t out_w)
{
    return (p->channels & 3) == 0 && p->in_h >= 3 && p->in_w >= 3 && out_w >= 1 && out_w <= MFD_DW_FRAME_PIXELS &&
           p->pad_h <= 1 && p->pad_w <= 1 && (out_h - 1) * p->stride_h - p->pad_h <= p->in_h - 2 &&
           (out_w - 1) * p->stride_w - p->pad_w <= p->in_w - 2;
}

/* One batch of a layer that fits (mfd_dw3x3_nhwc_fits, mfd_one_step_folds for every channel), row by row, so the
 * output may overlap input rows already consumed (mf_overlap). */
static inline void mfd_dw3x3_nhwc_layer(const mfd_dw3x3_nhwc *p, int32_t out_h, int32_t out_w, int8_t *out)
{
    mfd_dw_consts cached[MFD_DW_CACHED_QUADS];
    const int32_t quads = p->channels >> 2, count = quads < MFD_DW_CACHED_QUADS ? quads : MFD_DW_CACHED_QUADS;
    int32_t quad, oy;
    for (quad = 0; quad < count; ++quad) {
        mfd_dw_consts_fill(p, 4 * quad, &cached[quad]);
    }
    for (oy = 0; oy < out_h; ++oy) {
        const int32_t in_y0 = oy * p->stride_h - p->pad_h;
        mfd_dw_frame_row(p, cached, oy, mfd_dw_moved(in_y0, p->in_h), out_w, out + (size_t)oy * out_w * p->channels);
    }
}

#endif /* MFD_DEPTHWISE_NHWC_H */
