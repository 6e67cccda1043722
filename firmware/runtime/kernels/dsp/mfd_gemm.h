/*
 * Convolution as matrix products, shared by the DSP CONV_2D and the
 * one-input-channel DEPTHWISE_CONV_2D: a receptive field copied into an int16
 * column (input offset added, zeros where the field leaves the input, as the
 * reference skips those taps), then 2 x 2 blocks of dot products (two weight
 * rows by two columns) at two MACs per SMLAD.
 *
 * Column order: each whole run of four values k..k+3 is stored as k, k+2,
 * k+1, k+3, the order SXTB16 and SXTB16(ROR 8) unpack a weight word in, so
 * the weights are used as they are in the model; the last total % 4 values
 * stay in order.
 */
#ifndef MFD_GEMM_H
#define MFD_GEMM_H

#include "mfd_dsp.h"

/* What the column builder reads: one batch's NHWC input and the filter window. */
typedef struct mfd_patch {
    const int8_t *in;
    int32_t in_h, in_w, in_c;
    int32_t f_h, f_w, f_c; /* a column holds f_h * f_w * f_c values: channels c0 .. c0 + f_c - 1 */
    int32_t stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
    int32_t offset; /* -input zero point */
} mfd_patch;

static inline int32_t mfd_patch_values(const mfd_patch *p) { return p->f_h * p->f_w * p->f_c; }

/* Where value k of a column goes (whole: the values in whole runs of four). */
static inline int32_t mfd_column_slot(int32_t k, int32_t whole)
{
    static const int8_t order[4] = {0, 2, 1, 3};
    return k < whole ? (k & ~3) + order[k & 3] : k;
}

static inline void mfd_column_zeros(int16_t *column, int32_t *k, int32_t whole, int32_t count)
{
    int32_t i;
    for (i = 0; i < count; ++i, ++*k) {
        column[mfd_column_slot(*k, whole)] = 0;
    }
}

/* count input bytes from src, offset added, as column values *k onwards; a word at a time where a run of four starts. */
static inline void mfd_column_copy(int16_t *column, int32_t *k, int32_t whole, const int8_t *src, int32_t count,
                                   int32_t offset)
{
    const uint32_t offsets = mfd_dup16(offset);
    int32_t i = 0;
    for (; i < count && (*k & 3) != 0; ++i, ++*k) {
        column[mfd_column_slot(*k, whole)] = (int16_t)(src[i] + offset);
    }
    for (; i + 4 <= count && *k + 4 <= whole; i += 4, *k += 4) {
        const uint32_t x = mfd_read32(src + i);
        mfd_write32(&column[*k], mfd_sxtab16(offsets, x));
        mfd_write32(&column[*k + 2], mfd_sxtab16_ror8(offsets, x));
    }
    for (; i < count; ++i, ++*k) {
        column[mfd_column_slot(*k, whole)] = (int16_t)(src[i] + offset);
    }
}

/* count (a multiple of 4) input bytes from src, offset added, as whole runs of four of a column, a word at a time. */
static inline void mfd_column_runs(const int8_t *src, int32_t count, int32_t offset, int16_t *dst)
{
    const uint32_t offsets = mfd_dup16(offset);
    int32_t i;
    for (i = 0; i < count; i += 4, dst += 4) {
        const uint32_t x = mfd_read32(src + i);
        mfd_write32(dst, mfd_sxtab16(offsets, x));
        mfd_write32(dst + 2, mfd_sxtab16_ror8(offsets, x));
    }
}

/* The receptive field of output (oy, ox), channels c0.., as a column. Where the
 * taps of a filter row are adjacent in memory (no dilation across, every
 * channel read) the row's valid part is one contiguous copy. */
static inline void mfd_column(const mfd_patch *p, int32_t oy, int32_t ox, int32_t c0, int16_t *column)
{
    const int32_t whole = mfd_patch_values(p) & ~3;
    const int32_t in_y0 = oy * p->stride_h - p->pad_h;
    const int32_t in_x0 = ox * p->stride_w - p->pad_w;
    const int contiguous = p->dilation_w == 1 && p->f_c == p->in_c;
    int32_t k = 0;
    int32_t fy;
    if (contiguous && in_y0 >= 0 && in_y0 + p->dilation_h * (p->f_h - 1) < p->in_h && in_x0 >= 0 &&
        in_x0 + p->f_w <= p->in_w) {
        /* Inside the input: one copy per filter row, no tap checks; rows of whole runs of four (every 1 x 1
         * convolution over channels in fours, micro_speech's 8-wide filter) a word at a time with no
         * bookkeeping. */
        const size_t row_step = (size_t)p->dilation_h * p->in_w * p->in_c;
        const int32_t run = p->f_w * p->f_c;
        const int8_t *row = p->in + ((size_t)in_y0 * p->in_w + in_x0) * p->in_c;
        if ((run & 3) == 0) {
            for (fy = 0; fy < p->f_h; ++fy, row += row_step, column += run) {
                mfd_column_runs(row, run, p->offset, column);
            }
            return;
        }
        for (fy = 0; fy < p->f_h; ++fy, row += row_step) {
            if (run < 8) { /* short rows (3 x 3 over one channel): value by value beats the copy's set-up */
                int32_t i;
                for (i = 0; i < run; ++i, ++k) {
                    column[mfd_column_slot(k, whole)] = (int16_t)(row[i] + p->offset);
                }
            } else {
                mfd_column_copy(column, &k, whole, row, run, p->offset);
            }
        }
        return;
    }
    for (fy = 0; fy < p->f_h; ++fy) {
        const int32_t in_y = in_y0 + p->dilation_h * fy;
        const int8_t *row;
        int32_t fx = 0;
        if (in_y < 0 || in_y >= p->in_h) {
            mfd_column_zeros(column, &k, whole, p->f_w * p->f_c);
            continue;
        }
        row = p->in + (size_t)in_y * p->in_w * p->in_c + c0;
        while (fx < p->f_w) {
            const int32_t in_x = in_x0 + p->dilation_w * fx;
            int32_t run = 1;
            if (in_x < 0 || in_x >= p->in_w) {
                mfd_column_zeros(column, &k, whole, p->f_c);
                ++fx;
                continue;
            }
            if (contiguous) {
                const int32_t left = p->in_w - in_x;
                run = p->f_w - fx < left ? p->f_w - fx : left;
            }
            mfd_column_copy(column, &k, whole, row + (size_t)in_x * p->in_c, run * p->f_c, p->offset);
            fx += run;
        }
    }
}

/* The whole runs of four of a 2 x 2 block (see mfd_block_2x2): `runs` runs. On a DSP core, columns 4-byte
 * aligned, one asm loop of 19 instructions per 16 MACs (LDRD fetches a column's two words; the compiler's
 * loop spills a pointer and takes 23). */
#if defined(MFD_ASM_LOOPS)
static inline void mfd_block_2x2_asm(const int8_t *row0, const int8_t *row1, const int16_t *col0, const int16_t *col1,
                                     int32_t runs, int32_t *a00, int32_t *a01, int32_t *a10, int32_t *a11)
{
    uint32_t w, t, xe, xo;
    __asm__("1:\n\t"
            "ldr %[w], [%[row0]], #4\n\t"
            "ldrd %[xe], %[xo], [%[col0]], #8\n\t"
            "sxtb16 %[t], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[a00], %[t], %[xe], %[a00]\n\t"
            "smlad %[a00], %[w], %[xo], %[a00]\n\t"
            "ldrd %[xe], %[xo], [%[col1]], #8\n\t"
            "smlad %[a01], %[t], %[xe], %[a01]\n\t"
            "smlad %[a01], %[w], %[xo], %[a01]\n\t"
            "ldr %[w], [%[row1]], #4\n\t"
            "sxtb16 %[t], %[w]\n\t"
            "sxtb16 %[w], %[w], ror #8\n\t"
            "smlad %[a11], %[t], %[xe], %[a11]\n\t"
            "smlad %[a11], %[w], %[xo], %[a11]\n\t"
            "ldrd %[xe], %[xo], [%[col0], #-8]\n\t"
            "smlad %[a10], %[t], %[xe], %[a10]\n\t"
            "smlad %[a10], %[w], %[xo], %[a10]\n\t"
            "subs %[runs], %[runs], #1\n\t"
            "bne 1b"
            : [a00] "+r"(*a00), [a01] "+r"(*a01), [a10] "+r"(*a10), [a11] "+r"(*a11), [row0] "+r"(row0),
              [row1] "+r"(row1), [col0] "+r"(col0), [col1] "+r"(col1), [runs] "+r"(runs), [w] "=&r"(w), [t] "=&r"(t),
              [xe] "=&r"(xe), [xo] "=&r"(xo)
            :
            : "cc", "memory");
}
#endif

static inline void mfd_block_2x2_runs(const int8_t *row0, const int8_t *row1, const int16_t *col0, const int16_t *col1,
                                      int32_t runs, int32_t *a00, int32_t *a01, int32_t *a10, int32_t *a11)
{
    int32_t k;
#if defined(MFD_ASM_LOOPS)
    if ((((uintptr_t)col0 | (uintptr_t)col1) & 3u) == 0) { /* LDRD needs word alignment */
        mfd_block_2x2_asm(row0, row1, col0, col1, runs, a00, a01, a10, a11);
        return;
    }
#endif
    for (k = 0; k < 4 * runs; k += 4) {
        const uint32_t w0 = mfd_read32(row0 + k);
        const uint32_t w1 = mfd_read32(row1 + k);
        const uint32_t w0even = mfd_sxtb16(w0), w0odd = mfd_sxtb16_ror8(w0);
        const uint32_t w1even = mfd_sxtb16(w1), w1odd = mfd_sxtb16_ror8(w1);
        const uint32_t x0even = mfd_read32(col0 + k), x0odd = mfd_read32(col0 + k + 2);
        const uint32_t x1even = mfd_read32(col1 + k), x1odd = mfd_read32(col1 + k + 2);
        *a00 = mfd_smlad(w0even, x0even, *a00);
        *a00 = mfd_smlad(w0odd, x0odd, *a00);
        *a01 = mfd_smlad(w0even, x1even, *a01);
        *a01 = mfd_smlad(w0odd, x1odd, *a01);
        *a10 = mfd_smlad(w1even, x0even, *a10);
        *a10 = mfd_smlad(w1odd, x0odd, *a10);
        *a11 = mfd_smlad(w1even, x1even, *a11);
        *a11 = mfd_smlad(w1odd, x1odd, *a11);
    }
}

/* acc[2 * r + c] += weights row r . column c, for two rows and two columns of `total` values. */
static inline void mfd_block_2x2(const int8_t *row0, const int8_t *row1, const int16_t *col0, const int16_t *col1,
                                 int32_t total, int32_t acc[4])
{
    const int32_t whole = total & ~3;
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t k;
    if (whole > 0) {
        mfd_block_2x2_runs(row0, row1, col0, col1, whole / 4, &a00, &a01, &a10, &a11);
    }
    for (k = whole; k < total; ++k) {
        a00 = mf_wrap_add(a00, row0[k] * col0[k]);
        a01 = mf_wrap_add(a01, row0[k] * col1[k]);
        a10 = mf_wrap_add(a10, row1[k] * col0[k]);
        a11 = mf_wrap_add(a11, row1[k] * col1[k]);
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

/* Bytes of two columns of `values`, the second starting 4-byte aligned. */
static inline size_t mfd_columns_bytes(int32_t values) { return 2u * (size_t)((values + 1) & ~1) * sizeof(int16_t); }

/* A 2 x 2 block's outputs (acc: channel oc at pixels 0 and 1, then oc1; oc1 == oc: one channel; pair 0: one
 * pixel) into the pixels at out0 and out0 + out_c. Two channels whose requantization takes one step (nearly all):
 * each channel's constants worked out once for both pixels, the four values requantized and clamped as one word
 * (mfd_clamp4), stored as two halfwords; otherwise value by value. */
static inline void mfd_store_2x2(const int32_t acc[4], const mfd_requant *requant, int32_t oc, int32_t oc1, int pair,
                                 mfd_out o, int8_t *out0, int32_t out_c)
{
    const mfd_requant *q0 = &requant[oc], *q1 = &requant[oc1];
    int32_t k;
    if (oc1 != oc && MFD_LIKELY(q0->right >= 2 && q1->right >= 2)) {
        const mfd_one_step k0 = mfd_one_step_of(q0, 0), k1 = mfd_one_step_of(q1, 0);
        const uint32_t v = mfd_clamp4(mfd_requantize_one_step(acc[0], k0), mfd_requantize_one_step(acc[2], k1),
                                      mfd_requantize_one_step(acc[1], k0), mfd_requantize_one_step(acc[3], k1), o);
        mfd_write16(out0 + oc, (uint16_t)v);
        if (pair) {
            mfd_write16(out0 + out_c + oc, (uint16_t)(v >> 16));
        }
        return;
    }
    for (k = 0; k < 4; k += pair ? 1 : 2) { /* acc[k]: channel k / 2 (oc1 == oc: the same value again), pixel k % 2 */
        out0[(k & 1) * out_c + (k < 2 ? oc : oc1)] = mfd_output_of(acc[k], k < 2 ? q0 : q1, o);
    }
}

/*
 * Output rows [oy, oy + rows) of a convolution whose weights are rows of
 * `total` int8 (out_c rows, or per_group rows per group of f_c input
 * channels), out_row: row oy's first pixel. Pixels are paired in row-major
 * order, across rows where the width is odd (only the very last pixel may be
 * alone: computed twice, stored once), then channel pairs, the odd channel
 * likewise. A pair of channels of both pixels is requantized and clamped as
 * one word (mfd_outputs4) and stored as two halfwords. Outputs are written in
 * order after the columns of their pair are read, so an output that replaces
 * its input row by row (mf_overlap) still may.
 */
static inline void mfd_conv_rows(const mfd_patch *p, const int8_t *weights, const int32_t *bias,
                                 const mfd_requant *requant, int32_t oy, int32_t rows, int32_t out_w, int32_t out_c,
                                 int32_t per_group, mfd_out o, int8_t *out_row, int16_t *col0)
{
    const int32_t total = mfd_patch_values(p);
    const int32_t pixels = rows * out_w;
    int16_t *col1 = col0 + ((total + 1) & ~1);
    /* 1 x 1, stride 1, no padding, every channel in whole runs of four: a pixel's column is the pixel */
    const int pointwise = p->f_h == 1 && p->f_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 &&
                          p->pad_w == 0 && p->f_c == p->in_c && (total & 3) == 0;
    int32_t i;
    for (i = 0; i < pixels; i += 2) {
        const int pair = i + 1 < pixels;
        int8_t *out0 = out_row + (size_t)i * out_c;
        int32_t first;
        for (first = 0; first < out_c; first += per_group) {
            const int32_t end = first + per_group;
            const int32_t c0 = first / per_group * p->f_c;
            int32_t oc;
            if (pointwise) { /* the pair's two columns are its two pixels, one after the other in input and scratch */
                mfd_column_runs(p->in + ((size_t)oy * out_w + i) * total, (pair + 1) * total, p->offset, col0);
            } else {
                mfd_column(p, oy + i / out_w, i % out_w, c0, col0);
                if (pair) {
                    mfd_column(p, oy + (i + 1) / out_w, (i + 1) % out_w, c0, col1);
                }
            }
            for (oc = first; oc < end; oc += 2) {
                const int32_t oc1 = oc + 1 < end ? oc + 1 : oc;
                int32_t acc[4];
                acc[0] = acc[1] = bias != NULL ? bias[oc] : 0;
                acc[2] = acc[3] = bias != NULL ? bias[oc1] : 0;
                mfd_block_2x2(weights + (size_t)oc * total, weights + (size_t)oc1 * total, col0, pair ? col1 : col0,
                              total, acc);
                mfd_store_2x2(acc, requant, oc, oc1, pair, o, out0, out_c);
            }
        }
    }
}

#endif /* MFD_GEMM_H */
