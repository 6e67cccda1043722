/*
 * Depthwise 3 x 3 convolution without dilation (the depthwise layers of
 * MobileNet, DS-CNN and the like, and person_detect's first layer: one input
 * channel, depth multiplier 8), any stride and multiplier, for the DSP kernels.
 *
 * Channel-major, as TinyEngine does it: NHWC keeps a pixel's channels
 * adjacent, so SIMD over NHWC multiplies one tap of four channels per step
 * (one MAC per instruction, plus unpacking). Here four input channels at a
 * time are copied, row by row, into a ring of three rows per channel of int16
 * (input offset added, padding columns zero), so a channel's horizontal taps
 * sit side by side: one SMLAD does two taps of one output, and with the
 * weights of a filter row packed as (w0, w1) and (w1, w2) two adjacent
 * outputs at stride 1 take four multiply instructions and two loads per
 * filter row (six MACs). Rows outside the input are zero rows, so border
 * pixels run the interior loop. Accumulation is modulo 2^32 like the
 * reference's, so the order of the taps does not change a bit.
 *
 * Order: channel group by channel group, each group's output rows top to
 * bottom, a band's input rows copied into the ring before its outputs are
 * written. So the output may replace its input in place (same offset) when
 * the multiplier is 1 and the output is no wider than the input: output row
 * y of channel c overwrites only channel c's input in rows up to y, already
 * in the ring (padded rows up to y * stride + 2 are, pad_h <= 2) and never
 * read from the input again; other channels' bytes stay. Any other overlap
 * would overwrite later groups' input (prepare says which).
 */
#ifndef MFD_DEPTHWISE_H
#define MFD_DEPTHWISE_H

#include "mfd_dsp.h"

/* Input channels copied into the ring at a time. */
#define MFD_DW_GROUP 4

/* One batch of a 3 x 3 depthwise layer, in plain numbers. */
typedef struct mfd_dw3x3 {
    const int8_t *in;           /* in_h x in_w x in_c */
    const int8_t *weights;      /* 3 x 3 x out_c */
    const int32_t *bias;        /* out_c, or NULL */
    const mfd_requant *requant; /* out_c */
    int32_t in_h, in_w, in_c, multiplier, out_h, out_w;
    int32_t stride_h, stride_w, pad_h, pad_w;
    int32_t input_offset; /* -input zero point, within int8 (mfd_int8_offset_ok) */
    int32_t slots;        /* ring rows per channel: mfd_dw3x3_slots, computed once in prepare */
    mfd_out out;
} mfd_dw3x3;

/* int16 values in one ring row of one channel: every column an output reads, plus one (the pair loads). */
static inline int32_t mfd_dw3x3_row_length(int32_t out_w, int32_t stride_w) { return ((out_w - 1) * stride_w + 5) & ~1; }

/* Ring rows per input row: one per channel of a group. */
static inline int32_t mfd_dw3x3_planes(int32_t in_c) { return in_c < MFD_DW_GROUP ? in_c : MFD_DW_GROUP; }

/* The ring holds whole input planes of a group when they fit in MFD_DW_RING_AIM bytes (small layers: each
 * output channel's weights are then packed once), else as many rows as fit, at least three. */
#define MFD_DW_RING_AIM 2048
#define MFD_DW_MAX_SLOTS 64

/* Ring rows per channel (slots): the padded input rows the layer reads, as many as fit, from 3 to MFD_DW_MAX_SLOTS.
 * Prepare's arithmetic (64-bit: eval links no 64-bit division); eval reads the result from the record. */
static inline int32_t mfd_dw3x3_slots(const mfd_dw3x3 *p)
{
    const int64_t needed = (int64_t)(p->out_h - 1) * p->stride_h + 3;
    const int64_t row_bytes = (int64_t)mfd_dw3x3_planes(p->in_c) * mfd_dw3x3_row_length(p->out_w, p->stride_w) * 2;
    int64_t fit = (MFD_DW_RING_AIM - (int64_t)p->out_w * 4) / row_bytes;
    fit = fit < 3 ? 3 : (fit > MFD_DW_MAX_SLOTS ? MFD_DW_MAX_SLOTS : fit);
    return (int32_t)(needed < fit ? needed : fit);
}

/* The kernel's scratch (p->slots set): the ring, then a row of int32 accumulators. */
static inline size_t mfd_dw3x3_scratch_bytes(const mfd_dw3x3 *p)
{
    return (size_t)p->slots * (size_t)mfd_dw3x3_planes(p->in_c) *
               (size_t)mfd_dw3x3_row_length(p->out_w, p->stride_w) * sizeof(int16_t) +
           (size_t)p->out_w * sizeof(int32_t);
}

/* n int16 zeros (n even, dst 4-byte aligned), a word at a time, in a loop GCC does not turn into a call of
 * memset: the runner's code then carries no memset (code for a model's kernels, issue 14). */
static inline void mfd_dw3x3_zero(int16_t *dst, int32_t n)
{
    for (; n > 0; n -= 2, dst += 2) {
#if defined(__GNUC__)
        __asm__("" : "+r"(dst)); /* the store's address opaque to the loop-pattern pass */
#endif
        mfd_write32(dst, 0);
    }
}

/* Input row `in_row` (in_w x in_c) channels c0..c0+planes-1, offset added, into `planes` ring rows of
 * `length` from column pad_w on (columns up to `length` only; the others stay zero). */
static inline void mfd_dw3x3_fill(const mfd_dw3x3 *p, const int8_t *in_row, int32_t c0, int32_t planes, int16_t *dst,
                                  int32_t length)
{
    const uint32_t offsets = mfd_dup16(p->input_offset);
    const int32_t in_c = p->in_c;
    const int32_t columns = p->in_w < length - p->pad_w ? p->in_w : length - p->pad_w;
    const int8_t *src = in_row + c0;
    int16_t *row = dst + p->pad_w;
    int32_t x = 0;
    int32_t j;
    if (planes == MFD_DW_GROUP) {
        int16_t *r0 = row, *r1 = row + length, *r2 = row + 2 * length, *r3 = row + 3 * length;
        for (; x + 1 < columns; x += 2, src += 2 * in_c) {
            const uint32_t a = mfd_read32(src), b = mfd_read32(src + in_c);
            const uint32_t a_even = mfd_sxtab16(offsets, a), b_even = mfd_sxtab16(offsets, b);
            const uint32_t a_odd = mfd_sxtab16_ror8(offsets, a), b_odd = mfd_sxtab16_ror8(offsets, b);
            mfd_write32(r0 + x, mfd_pack_bottoms(a_even, b_even));
            mfd_write32(r1 + x, mfd_pack_bottoms(a_odd, b_odd));
            mfd_write32(r2 + x, mfd_pack_tops(a_even, b_even));
            mfd_write32(r3 + x, mfd_pack_tops(a_odd, b_odd));
        }
    } else if (in_c == 1) {
        for (; x + 3 < columns; x += 4, src += 4) {
            const uint32_t a = mfd_read32(src);
            const uint32_t even = mfd_sxtab16(offsets, a), odd = mfd_sxtab16_ror8(offsets, a);
            mfd_write32(row + x, mfd_pack_bottoms(even, odd));
            mfd_write32(row + x + 2, mfd_pack_tops(even, odd));
        }
    }
    for (; x < columns; ++x, src += in_c) {
        for (j = 0; j < planes; ++j) {
            row[(size_t)j * length + x] = (int16_t)(src[j] + p->input_offset);
        }
    }
}

/* Padded input rows [first, end) (input row = padded - pad_h) of channels c0.. into their ring slots
 * (row % slots); rows outside the input are zero rows. */
static inline void mfd_dw3x3_fill_rows(const mfd_dw3x3 *p, int32_t first, int32_t end, int32_t c0, int32_t planes,
                                       int16_t *ring, int32_t slots, int32_t length)
{
    const int32_t slot_values = mfd_dw3x3_planes(p->in_c) * length;
    int32_t padded;
    for (padded = first; padded < end; ++padded) {
        const int32_t in_y = padded - p->pad_h;
        int16_t *dst = ring + (size_t)(padded % slots) * slot_values;
        if (in_y >= 0 && in_y < p->in_h) {
            mfd_dw3x3_fill(p, p->in + (size_t)in_y * p->in_w * p->in_c, c0, planes, dst, length);
        } else {
            mfd_dw3x3_zero(dst, planes * length);
        }
    }
}

/* One output channel's filter rows, packed: (w0, w1) and (w1, w2) of each. */
typedef struct mfd_dw3x3_taps {
    uint32_t w01, w12;
} mfd_dw3x3_taps;

static inline void mfd_dw3x3_pack(const int8_t *w, int32_t out_c, mfd_dw3x3_taps taps[3])
{
    int32_t fy;
    for (fy = 0; fy < 3; ++fy) {
        const uint32_t w0 = (uint32_t)(int32_t)w[(size_t)(3 * fy) * out_c], w1 = (uint32_t)(int32_t)w[(size_t)(3 * fy + 1) * out_c];
        const uint32_t w2 = (uint32_t)(int32_t)w[(size_t)(3 * fy + 2) * out_c];
        taps[fy].w01 = mfd_pack_bottoms(w0, w1);
        taps[fy].w12 = mfd_pack_bottoms(w1, w2);
    }
}

/* acc[0 .. 2 * pairs) = bias + all three filter rows, outputs in pairs at stride 1 or 2, from ring rows r0..r2
 * (4-byte aligned: an even column of a ring row). On a DSP core one asm loop of thirteen registers, the
 * weights read with LDRD each pair (the compiler, given the C, spills them and the accumulators). */
#if defined(MFD_ASM_LOOPS)
#define MFD_DW3X3_ROW(row, weights, next)                                       \
    "ldrd %[lo], %[hi], [%[" row "]], #" next "\n\t"                          \
    "ldrd %[w01], %[w12], [%[t], #" weights "]\n\t"
/* from: the accumulators' starting value (the bias on the first filter row, then a0 and a1 themselves). */
#define MFD_DW3X3_S1_MACS(from0, from1)                     \
    "smlad %[a0], %[lo], %[w01], %[" from0 "]\n\t"         \
    "smlatb %[a1], %[lo], %[w01], %[" from1 "]\n\t"        \
    "smlabt %[a0], %[hi], %[w12], %[a0]\n\t"               \
    "smlad %[a1], %[hi], %[w12], %[a1]\n\t"
#define MFD_DW3X3_S2_MACS(row, from0, from1)                \
    "smlad %[a0], %[lo], %[w01], %[" from0 "]\n\t"         \
    "smlad %[a1], %[hi], %[w01], %[" from1 "]\n\t"         \
    "smlabt %[a0], %[hi], %[w12], %[a0]\n\t"               \
    "ldr %[lo], [%[" row "]]\n\t"                          \
    "smlabt %[a1], %[lo], %[w12], %[a1]\n\t"
/* One pair per iteration: `rows` runs the three filter rows (the first adding to the bias), one store. */
#define MFD_DW3X3_LOOP(rows)                                                                                      \
    __asm__ volatile("1:\n\t" rows "strd %[a0], %[a1], [%[acc]], #8\n\t"                                        \
                     "subs %[n], %[n], #1\n\t"                                                                  \
                     "bne 1b"                                                                                     \
                     : [r0] "+r"(r0), [r1] "+r"(r1), [r2] "+r"(r2), [acc] "+r"(acc), [n] "+r"(pairs), [lo] "=&r"(lo), \
                       [hi] "=&r"(hi), [w01] "=&r"(w01), [w12] "=&r"(w12), [a0] "=&r"(a0), [a1] "=&r"(a1)          \
                     : [t] "r"(t), [bias] "r"(bias)                                                               \
                     : "cc", "memory")
static inline void mfd_dw3x3_pairs(const int16_t *r0, const int16_t *r1, const int16_t *r2, const mfd_dw3x3_taps *t,
                                   int32_t bias, int32_t stride, int32_t pairs, int32_t *acc)
{
    uint32_t lo, hi, w01, w12;
    int32_t a0, a1;
    if (stride == 1) {
        MFD_DW3X3_LOOP(MFD_DW3X3_ROW("r0", "0", "4") MFD_DW3X3_S1_MACS("bias", "bias") MFD_DW3X3_ROW("r1", "8", "4")
                           MFD_DW3X3_S1_MACS("a0", "a1") MFD_DW3X3_ROW("r2", "16", "4") MFD_DW3X3_S1_MACS("a0", "a1"));
    } else {
        MFD_DW3X3_LOOP(MFD_DW3X3_ROW("r0", "0", "8") MFD_DW3X3_S2_MACS("r0", "bias", "bias") MFD_DW3X3_ROW("r1", "8", "8")
                           MFD_DW3X3_S2_MACS("r1", "a0", "a1") MFD_DW3X3_ROW("r2", "16", "8")
                           MFD_DW3X3_S2_MACS("r2", "a0", "a1"));
    }
}
#undef MFD_DW3X3_LOOP
#undef MFD_DW3X3_ROW
#undef MFD_DW3X3_S1_MACS
#undef MFD_DW3X3_S2_MACS
#else
static inline void mfd_dw3x3_pairs(const int16_t *r0, const int16_t *r1, const int16_t *r2, const mfd_dw3x3_taps *t,
                                   int32_t bias, int32_t stride, int32_t pairs, int32_t *acc)
{
    const int16_t *const rows[3] = {r0, r1, r2};
    int32_t fy, i;
    for (i = 0; i < 2 * pairs; ++i) {
        acc[i] = bias;
    }
    for (fy = 0; fy < 3; ++fy) {
        const uint32_t w01 = t[fy].w01, w12 = t[fy].w12;
        const int16_t *r = rows[fy];
        for (i = 0; i < pairs; ++i, r += 2 * stride) {
            const uint32_t lo = mfd_read32(r), hi = mfd_read32(r + 2);
            if (stride == 1) {
                acc[2 * i] = mfd_smlabt(hi, w12, mfd_smlad(lo, w01, acc[2 * i]));
                acc[2 * i + 1] = mfd_smlad(hi, w12, mfd_smlatb(lo, w01, acc[2 * i + 1]));
            } else {
                acc[2 * i] = mfd_smlabt(hi, w12, mfd_smlad(lo, w01, acc[2 * i]));
                acc[2 * i + 1] = mfd_smlabt(mfd_read32(r + 4), w12, mfd_smlad(hi, w01, acc[2 * i + 1]));
            }
        }
    }
}
#endif

/* One output row of one channel: rows[fy] + plane are its ring rows, out its first output (outputs out_c
 * apart); acc: out_w int32 of scratch. Strides 1 and 2 run in pairs, others (and an odd last output) one by one. */
static inline void mfd_dw3x3_channel_row(const mfd_dw3x3 *p, const mfd_dw3x3_taps taps[3], int32_t bias, mfd_requant q,
                                         const int16_t *const rows[3], int32_t plane, int8_t *out, int32_t out_c,
                                         int32_t *acc)
{
    const mfd_out o = p->out;
    const int32_t out_w = p->out_w, stride = p->stride_w;
    int32_t ox = 0;
    if (stride <= 2 && out_w >= 2) {
        ox = out_w & ~1;
        mfd_dw3x3_pairs(rows[0] + plane, rows[1] + plane, rows[2] + plane, taps, bias, stride, out_w >> 1, acc);
    }
    for (; ox < out_w; ++ox) {
        const int32_t column = plane + ox * stride;
        int32_t fy;
        acc[ox] = bias;
        for (fy = 0; fy < 3; ++fy) {
            acc[ox] = mfd_smlabt(mfd_read32(rows[fy] + column + 2), taps[fy].w12, mfd_smlad(mfd_read32(rows[fy] + column), taps[fy].w01, acc[ox]));
        }
    }
    if (o.act_min == INT8_MIN && o.act_max == INT8_MAX) { /* no activation, or one the int8 range covers: SSAT alone */
        for (ox = 0; ox < out_w; ++ox, out += out_c) {
            out[0] = (int8_t)mfd_sat8(mf_wrap_add(mfd_requantize(acc[ox], &q), o.zero_point));
        }
    } else {
        for (ox = 0; ox < out_w; ++ox, out += out_c) {
            out[0] = mfd_output_of(acc[ox], &q, o);
        }
    }
}

/* The whole batch: out (out_h x out_w x in_c * multiplier); scratch: mfd_dw3x3_scratch_bytes, 4-byte aligned.
 * Channel group by channel group, in bands of output rows whose input rows all fit in the ring: each band's
 * new rows are copied in, then each output channel's weights are packed once for the band. */
static inline void mfd_dw3x3_layer(const mfd_dw3x3 *p, int8_t *out, void *scratch)
{
    const int32_t length = mfd_dw3x3_row_length(p->out_w, p->stride_w);
    const int32_t slots = p->slots;
    const int32_t slot_values = mfd_dw3x3_planes(p->in_c) * length;
    const int32_t band = (slots - 3) / p->stride_h + 1; /* output rows per band */
    const int32_t out_c = p->in_c * p->multiplier;
    int16_t *ring = (int16_t *)scratch;
    int32_t *acc = (int32_t *)(void *)(ring + slots * slot_values); /* length is even */
    int32_t c0;
    int32_t j;
    mfd_dw3x3_zero(ring, slots * slot_values); /* the padding columns stay zero from here on */
    for (c0 = 0; c0 < p->in_c; c0 += MFD_DW_GROUP) {
        const int32_t planes = p->in_c - c0 < MFD_DW_GROUP ? p->in_c - c0 : MFD_DW_GROUP;
        int32_t filled = 0; /* padded rows below this are in the ring (or were skipped) */
        int32_t oy0;
        for (oy0 = 0; oy0 < p->out_h; oy0 += band) {
            const int32_t rows_out = p->out_h - oy0 < band ? p->out_h - oy0 : band;
            const int32_t top = oy0 * p->stride_h, end = (oy0 + rows_out - 1) * p->stride_h + 3;
            int32_t oc;
            mfd_dw3x3_fill_rows(p, filled > top ? filled : top, end, c0, planes, ring, slots, length);
            filled = end;
            for (oc = c0 * p->multiplier; oc < (c0 + planes) * p->multiplier; ++oc) {
                const int32_t plane = (oc / p->multiplier - c0) * length;
                const int32_t bias = p->bias != NULL ? p->bias[oc] : 0;
                mfd_dw3x3_taps taps[3];
                int32_t oy;
                mfd_dw3x3_pack(p->weights + oc, out_c, taps);
                for (oy = oy0; oy < oy0 + rows_out; ++oy) {
                    const int16_t *rows[3];
                    for (j = 0; j < 3; ++j) {
                        rows[j] = ring + (size_t)((oy * p->stride_h + j) % slots) * slot_values;
                    }
                    mfd_dw3x3_channel_row(p, taps, bias, p->requant[oc], rows, plane,
                                          out + (size_t)oy * p->out_w * out_c + oc, out_c, acc);
                }
            }
        }
    }
}

#endif /* MFD_DEPTHWISE_H */
