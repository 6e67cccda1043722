/*
 * 2:4 sparse filters (mf_sparse.h: two int8 values and two 2-bit positions
 * per group of four, biases folded) on cores with the DSP extension, four
 * output pixels at a time.
 *
 * The four pixels' inputs are first widened into an interleaved column: two
 * words per input k, (pixel 0, pixel 1) and (pixel 2, pixel 3) as int16
 * lanes. A stored weight's position then picks one word pair (one LDRD) for
 * all four pixels, and SMLAxy multiplies each lane by the weight, itself a
 * lane of the channel's SXTB16-widened value word. Each positions byte (two
 * groups) is decoded once for the four pixels, so a stored weight costs its
 * position, one load and four MACs. The sums are the portable loop's, exact
 * in int32 (wrapping).
 */
#ifndef MFD_SPARSE24_H
#define MFD_SPARSE24_H

#include "../mf_sparse.h"
#include "mfd_dsp.h"

/* Scratch bytes of the column of k inputs of four pixels. */
static inline size_t mfd_sparse24_column_bytes(int32_t k) { return 8u * (size_t)k; }

/* Prepare of a conv whose record *head is about to be stored: the column's bytes when its filter will be
 * stored in 2:4 with folded biases (mf_sparse_plan, which only images do), else 0. */
static inline size_t mfd_sparse24_scratch(const mf_op *op, const mf_affine_data *head)
{
    mf_affine_data plan = *head;
    const int32_t channels = op->inputs[1].dims[0];
    if (!mf_op_data_in_flash(op) || channels < 1 || mf_sparse_plan(op, MF_AFFINE_CONV, &plan) == 0 ||
        plan.weights != MF_WEIGHTS_SPARSE_2_4 || !plan.bias_folded) {
        return 0;
    }
    return mfd_sparse24_column_bytes(mf_tensor_flat_size(&op->inputs[1]) / channels);
}

/* The interleaved column of pixels x[0..3] (k inputs each): words 2i and 2i + 1 are (x0[i], x1[i]) and
 * (x2[i], x3[i]) as int16 lanes, four inputs of each pixel at a time. */
static inline void mfd_sparse24_column(const int8_t *const x[4], int32_t k, uint32_t *column)
{
    int32_t i = 0;
    for (; i + 4 <= k; i += 4, column += 8) {
        const uint32_t p0 = mfd_read32(x[0] + i), p1 = mfd_read32(x[1] + i), p2 = mfd_read32(x[2] + i),
                       p3 = mfd_read32(x[3] + i);
        const uint32_t e0 = mfd_sxtb16(p0), e1 = mfd_sxtb16(p1), e2 = mfd_sxtb16(p2), e3 = mfd_sxtb16(p3);
        const uint32_t o0 = mfd_sxtb16_ror8(p0), o1 = mfd_sxtb16_ror8(p1), o2 = mfd_sxtb16_ror8(p2),
                       o3 = mfd_sxtb16_ror8(p3); /* inputs 1 and 3 */
        column[0] = (e0 & 0xFFFFu) | e1 << 16; /* input i */
        column[1] = (e2 & 0xFFFFu) | e3 << 16;
        column[2] = (o0 & 0xFFFFu) | o1 << 16; /* input i + 1 */
        column[3] = (o2 & 0xFFFFu) | o3 << 16;
        column[4] = e0 >> 16 | (e1 & 0xFFFF0000u); /* input i + 2 */
        column[5] = e2 >> 16 | (e3 & 0xFFFF0000u);
        column[6] = o0 >> 16 | (o1 & 0xFFFF0000u); /* input i + 3 */
        column[7] = o2 >> 16 | (o3 & 0xFFFF0000u);
    }
    for (; i < k; ++i, column += 2) {
        column[0] = ((uint32_t)x[0][i] & 0xFFFFu) | (uint32_t)x[1][i] << 16;
        column[1] = ((uint32_t)x[2][i] & 0xFFFFu) | (uint32_t)x[3][i] << 16;
    }
}

/* The four pixels' sums. */
typedef struct mfd_sums4 {
    int32_t a0, a1, a2, a3;
} mfd_sums4;

/* s plus one weight (lane `w_top` of w: 0 bottom, 1 top) times each pixel's input in the column words
 * x[0] = (pixel 0, pixel 1) and x[1] = (pixel 2, pixel 3), read as one 8-byte load. */
static inline mfd_sums4 mfd_sparse24_mac(mfd_sums4 s, uint32_t w, int w_top, const uint32_t *x)
{
    uint64_t pair;
    uint32_t x01, x23;
    MFD_MEMCPY(&pair, x, sizeof pair);
    x01 = (uint32_t)pair;
    x23 = (uint32_t)(pair >> 32);
    if (w_top) {
        s.a0 = mfd_smlatb(w, x01, s.a0);
        s.a1 = mfd_smlatt(w, x01, s.a1);
        s.a2 = mfd_smlatb(w, x23, s.a2);
        s.a3 = mfd_smlatt(w, x23, s.a3);
    } else {
        s.a0 = mfd_smlabb(w, x01, s.a0);
        s.a1 = mfd_smlabt(w, x01, s.a1);
        s.a2 = mfd_smlabb(w, x23, s.a2);
        s.a3 = mfd_smlabt(w, x23, s.a3);
    }
    return s;
}

/* The channel's pairs of groups (one positions byte each, `blocks` > 0) as one asm loop of 35 instructions
 * per 8 stored weights: an index (AND or UBFX), its word pair's address and one LDRD per weight (the
 * compiler's loop spills accumulators and loads words one by one). */
#if defined(MFD_ASM_LOOPS)
static inline mfd_sums4 mfd_sparse24_blocks_asm(const uint32_t *column, const int8_t *v, const uint8_t *pos,
                                                int32_t blocks, mfd_sums4 s)
{
    const uint8_t *end = pos + blocks;
    uint32_t bits, w_even, w_odd, x01, x23;
    __asm__("1:\n\t"
            "ldrb %[bits], [%[pos]], #1\n\t"
            "ldr %[we], [%[v]], #4\n\t"
            "sxtb16 %[wo], %[we], ror #8\n\t"
            "sxtb16 %[we], %[we]\n\t"
            "and %[x23], %[bits], #3\n\t"
            "add %[x23], %[col], %[x23], lsl #3\n\t"
            "ldrd %[x01], %[x23], [%[x23]]\n\t"
            "smlabb %[a0], %[we], %[x01], %[a0]\n\t"
            "smlabt %[a1], %[we], %[x01], %[a1]\n\t"
            "smlabb %[a2], %[we], %[x23], %[a2]\n\t"
            "smlabt %[a3], %[we], %[x23], %[a3]\n\t"
            "ubfx %[x23], %[bits], #2, #2\n\t"
            "add %[x23], %[col], %[x23], lsl #3\n\t"
            "ldrd %[x01], %[x23], [%[x23]]\n\t"
            "smlabb %[a0], %[wo], %[x01], %[a0]\n\t"
            "smlabt %[a1], %[wo], %[x01], %[a1]\n\t"
            "smlabb %[a2], %[wo], %[x23], %[a2]\n\t"
            "smlabt %[a3], %[wo], %[x23], %[a3]\n\t"
            "ubfx %[x23], %[bits], #4, #2\n\t"
            "add %[x23], %[col], %[x23], lsl #3\n\t"
            "ldrd %[x01], %[x23], [%[x23], #32]\n\t"
            "smlatb %[a0], %[we], %[x01], %[a0]\n\t"
            "smlatt %[a1], %[we], %[x01], %[a1]\n\t"
            "smlatb %[a2], %[we], %[x23], %[a2]\n\t"
            "smlatt %[a3], %[we], %[x23], %[a3]\n\t"
            "lsr %[x23], %[bits], #6\n\t"
            "add %[x23], %[col], %[x23], lsl #3\n\t"
            "ldrd %[x01], %[x23], [%[x23], #32]\n\t"
            "smlatb %[a0], %[wo], %[x01], %[a0]\n\t"
            "smlatt %[a1], %[wo], %[x01], %[a1]\n\t"
            "smlatb %[a2], %[wo], %[x23], %[a2]\n\t"
            "smlatt %[a3], %[wo], %[x23], %[a3]\n\t"
            "add %[col], %[col], #64\n\t"
            "cmp %[pos], %[end]\n\t"
            "bne 1b"
            : [a0] "+r"(s.a0), [a1] "+r"(s.a1), [a2] "+r"(s.a2), [a3] "+r"(s.a3), [col] "+r"(column), [pos] "+r"(pos),
              [v] "+r"(v), [bits] "=&r"(bits), [we] "=&r"(w_even), [wo] "=&r"(w_odd), [x01] "=&r"(x01),
              [x23] "=&r"(x23)
            : [end] "r"(end)
            : "cc", "memory");
    return s;
}
#endif

/* s.a<p> plus one channel's k weights (values v, positions pos) . pixel p's inputs in the column. */
static inline mfd_sums4 mfd_sparse24_channel(const uint32_t *column, const int8_t *v, const uint8_t *pos, int32_t k,
                                             mfd_sums4 s)
{
    const uint8_t *end = pos + k / 8;
#if defined(MFD_ASM_LOOPS)
    if (pos < end) {
        s = mfd_sparse24_blocks_asm(column, v, pos, k / 8, s);
        column += 16 * (k / 8);
        v += 4 * (k / 8);
        pos = end;
    }
#endif
    for (; pos < end; ++pos, v += 4, column += 16) { /* two groups a positions byte: values v0 v1 | v2 v3 */
        const uint32_t bits = *pos;
        const uint32_t w = mfd_read32(v);
        const uint32_t w_even = mfd_sxtb16(w), w_odd = mfd_sxtb16_ror8(w); /* (v0, v2), (v1, v3) */
        s = mfd_sparse24_mac(s, w_even, 0, column + 2u * (bits & 3u));
        s = mfd_sparse24_mac(s, w_odd, 0, column + 2u * (bits >> 2 & 3u));
        s = mfd_sparse24_mac(s, w_even, 1, column + 8u + 2u * (bits >> 4 & 3u));
        s = mfd_sparse24_mac(s, w_odd, 1, column + 8u + 2u * (bits >> 6));
    }
    if (k % 8 != 0) { /* a last lone group */
        const uint32_t bits = *pos;
        const uint32_t w = ((uint32_t)(uint8_t)v[0] | (uint32_t)(uint8_t)v[1] << 8);
        s = mfd_sparse24_mac(s, mfd_sxtb16(w), 0, column + 2u * (bits & 3u));
        s = mfd_sparse24_mac(s, mfd_sxtb16_ror8(w), 0, column + 2u * (bits >> 2 & 3u));
    }
    return s;
}

/* acc plus one channel's k weights (values v, positions pos) . one row of inputs x (int8, offset folded
 * into the bias): each input picked by its position and multiplied by its weight's lane (SMLAxB), no
 * column; a fully connected layer's single row leaves no pixels to share the position decode with. */
static inline int32_t mfd_sparse24_row(const int8_t *x, const int8_t *v, const uint8_t *pos, int32_t k, int32_t acc)
{
    const uint8_t *end = pos + k / 8;
    for (; pos < end; ++pos, v += 4, x += 8) {
        const uint32_t bits = *pos;
        const uint32_t w = mfd_read32(v);
        const uint32_t w_even = mfd_sxtb16(w), w_odd = mfd_sxtb16_ror8(w); /* (v0, v2), (v1, v3) */
        acc = mfd_smlabb(w_even, (uint32_t)(int32_t)x[bits & 3u], acc);
        acc = mfd_smlabb(w_odd, (uint32_t)(int32_t)x[bits >> 2 & 3u], acc);
        acc = mfd_smlatb(w_even, (uint32_t)(int32_t)x[4u + (bits >> 4 & 3u)], acc);
        acc = mfd_smlatb(w_odd, (uint32_t)(int32_t)x[4u + (bits >> 6)], acc);
    }
    if (k % 8 != 0) { /* a last lone group */
        const uint32_t bits = *pos;
        acc = mf_wrap_add(acc, v[0] * x[bits & 3u]);
        acc = mf_wrap_add(acc, v[1] * x[bits >> 2 & 3u]);
    }
    return acc;
}

#endif /* MFD_SPARSE24_H */
