/* CONV_2D with INT4 weights on cores with the DSP extension (it replaces
 * kernels/conv_int4.c in such builds), bit for bit the portable INT4 loop.
 *
 * The columns are the int8 DSP conv's (mfd_column: int16, input offset
 * added, zeros in the padding, in the scratch dsp/conv.c planned), each run
 * of eight values then reordered in place into the lane pairs mfd_int4.h
 * unpacks a weight word into; each pair of output channels is a 2 x 2 block
 * of 16-times dot products, eight weights a word, read in place (a row that
 * starts mid-byte, an odd number of values after an odd row, is shifted by a
 * nibble as it is read). Filters whose rows hold more than
 * MFD_INT4_MAX_VALUES take the portable loop. */
#include "dsp_affine.h"
#include "mfd_int4.h"
#include "../mf_int4.h"

#define mf_conv_int4_eval mfd_conv_int4_eval_reference
#include "../conv_int4.c"
#undef mf_conv_int4_eval


/* In place: every whole run of eight column values, stored (x0, x2) (x1, x3) (x4, x6) (x5, x7), becomes
 * (x0, x4) (x2, x6) (x1, x5) (x3, x7). */
static void conv_int4_reorder(int16_t *column, int32_t runs)
{
    uint32_t *word = (uint32_t *)(void *)column;
    int32_t r;
    for (r = 0; r < runs; ++r, word += 4) {
        const uint32_t x02 = word[0], x13 = word[1], x46 = word[2], x57 = word[3];
        word[0] = (x02 & 0xFFFFu) | x46 << 16;
        word[1] = x02 >> 16 | (x46 & 0xFFFF0000u);
        word[2] = (x13 & 0xFFFFu) | x57 << 16;
        word[3] = x13 >> 16 | (x57 & 0xFFFF0000u);
    }
}

/* A packed filter row: its first byte, and whether its first value is that byte's high nibble. */
typedef struct conv_int4_row_at {
    const uint8_t *bytes;
    int odd;
} conv_int4_row_at;

/* Channel oc's row of a filter of `total` values a channel. */
static conv_int4_row_at conv_int4_row_of(const int8_t *filter, int32_t oc, int32_t total)
{
    const size_t nibble = (size_t)oc * (size_t)total;
    conv_int4_row_at row;
    row.bytes = (const uint8_t *)filter + nibble / 2;
    row.odd = (int)(nibble & 1u);
    return row;
}

/* Values 8r..8r+7 of the row as one word of eight nibbles (value 2k in byte k's low nibble): a row starting
 * mid-byte takes the nibble after the word's four bytes in (that byte holds value 8r + 7, inside the row). */
static uint32_t conv_int4_word(conv_int4_row_at row, int32_t r)
{
    const uint32_t word = mfd_read32(row.bytes + 4 * r);
    return row.odd ? word >> 4 | (uint32_t)row.bytes[4 * r + 4] << 28 : word;
}

/* acc[2 r + c] = 16 x (row r . column c) over `runs` runs of eight (rows: packed weights). Inlined twice,
 * with rows that all start on a byte (even filter depths: no nibble test per word) and without. */
static inline void conv_int4_block(conv_int4_row_at row0, conv_int4_row_at row1, const uint32_t *col0,
                                   const uint32_t *col1, int32_t runs, int32_t acc[4])
{
    int32_t r;
    acc[0] = acc[1] = acc[2] = acc[3] = 0;
    for (r = 0; r < runs; ++r, col0 += 4, col1 += 4) {
        const mfd_int4_lanes w0 = mfd_int4_unpack(conv_int4_word(row0, r));
        const mfd_int4_lanes w1 = mfd_int4_unpack(conv_int4_word(row1, r));
        acc[0] = mfd_int4_dot8(w0, col0, acc[0]);
        acc[1] = mfd_int4_dot8(w0, col1, acc[1]);
        acc[2] = mfd_int4_dot8(w1, col0, acc[2]);
        acc[3] = mfd_int4_dot8(w1, col1, acc[3]);
    }
}

/* Channel oc's weights after the whole runs of eight (k from whole8 on) . the column (slots of mfd_column). */
static int32_t conv_int4_tail(const int8_t *filter, int32_t oc, int32_t total, const int16_t *column)
{
    const int32_t whole8 = total & ~7, whole4 = total & ~3;
    int32_t sum = 0;
    int32_t k;
    for (k = whole8; k < total; ++k) {
        sum = mf_wrap_add(sum, mf_int4_at(filter, (size_t)oc * total + k) * column[mfd_column_slot(k, whole4)]);
    }
    return sum;
}

/* One output row: pixel pairs, channel pairs (the odd one computed twice, stored once), as mfd_conv_row. */
static void conv_int4_row(const mfd_patch *p, const mf_op *op, const mfd_requant *requant, int32_t oy, mfd_out o,
                          int8_t *out_row, int16_t *col0)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const int8_t *filter = (const int8_t *)op->inputs[1].data;
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int32_t out_w = op->outputs[0].dims[2], out_c = op->outputs[0].dims[3], per_group = d->channels_per_group;
    const int32_t total = mfd_patch_values(p), runs = total / 8;
    int16_t *col1 = col0 + ((total + 1) & ~1);
    int32_t ox;
    for (ox = 0; ox < out_w; ox += 2) {
        const int pair = ox + 1 < out_w;
        const int16_t *second = pair ? col1 : col0;
        int8_t *out0 = out_row + (size_t)ox * out_c;
        int32_t first;
        for (first = 0; first < out_c; first += per_group) {
            const int32_t end = first + per_group;
            int32_t oc;
            mfd_column(p, oy, ox, first / per_group * p->f_c, col0);
            conv_int4_reorder(col0, runs);
            if (pair) {
                mfd_column(p, oy, ox + 1, first / per_group * p->f_c, col1);
                conv_int4_reorder(col1, runs);
            }
            for (oc = first; oc < end; oc += 2) {
                const int32_t oc1 = oc + 1 < end ? oc + 1 : oc;
                const int32_t bias0 = bias != NULL ? bias[oc] : 0, bias1 = bias != NULL ? bias[oc1] : 0;
                int32_t acc[4];
                conv_int4_row_at row0 = conv_int4_row_of(filter, oc, total), row1 = conv_int4_row_of(filter, oc1, total);
                if (total % 2 == 0) {
                    row0.odd = row1.odd = 0;
                    conv_int4_block(row0, row1, (const uint32_t *)(const void *)col0,
                                    (const uint32_t *)(const void *)second, runs, acc);
                } else {
                    conv_int4_block(row0, row1, (const uint32_t *)(const void *)col0,
                                    (const uint32_t *)(const void *)second, runs, acc);
                }
                acc[0] = mf_wrap_add(acc[0] >> 4, bias0);
                acc[1] = mf_wrap_add(acc[1] >> 4, bias0);
                acc[2] = mf_wrap_add(acc[2] >> 4, bias1);
                acc[3] = mf_wrap_add(acc[3] >> 4, bias1);
                if (total % 8 != 0) {
                    acc[0] = mf_wrap_add(acc[0], conv_int4_tail(filter, oc, total, col0));
                    acc[1] = mf_wrap_add(acc[1], conv_int4_tail(filter, oc, total, second));
                    acc[2] = mf_wrap_add(acc[2], conv_int4_tail(filter, oc1, total, col0));
                    acc[3] = mf_wrap_add(acc[3], conv_int4_tail(filter, oc1, total, second));
                }
                mfd_store_2x2(acc, requant, oc, oc1, pair, o, out0, out_c);
            }
        }
    }
}

mf_status mf_conv_int4_eval(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t total = filter->dims[1] * filter->dims[2] * filter->dims[3];
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    const mfd_requant *requant;
    int16_t *columns;
    mfd_patch patch;
    int32_t b;
    if (d->variant != MFD_CONV_GEMM || total > MFD_INT4_MAX_VALUES) {
        return mfd_conv_int4_eval_reference(op);
    }
    requant = dsp_requant_table(op, d);
    columns = (int16_t *)mf_affine_scratch(op, d);
    dsp_patch_window(&patch, op, d, input->dims[3], filter->dims[3]);
    for (b = 0; b < input->dims[0]; ++b) {
        int32_t oy;
        patch.in = (const int8_t *)input->data + (size_t)b * patch.in_h * patch.in_w * patch.in_c;
        for (oy = 0; oy < output->dims[1]; ++oy) { /* row by row (mf_overlap) */
            conv_int4_row(&patch, op, requant, oy, o,
                          (int8_t *)output->data + ((size_t)b * output->dims[1] + oy) * output->dims[2] * output->dims[3],
                          columns);
        }
    }
    return MF_OK;
}
