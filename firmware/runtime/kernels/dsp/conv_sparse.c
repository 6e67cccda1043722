/* CONV_2D with a sparse filter on cores with the DSP extension (it replaces
 * kernels/conv_sparse.c in such builds): 2:4 filters with folded biases (1 x 1,
 * or ungrouped windows, read row by row in place or gathered where they reach
 * the padding) four output pixels at a time through an interleaved column
 * (mfd_sparse24.h) in the scratch dsp/conv.c planned for it (INT4 2:4 values
 * first unpacked there to the int8 layout, once per eval); grouped windows and
 * bitmaps take the portable loops. Outputs are the dense kernel's. */
#include "dsp_affine.h"
#include "mfd_sparse24.h"

#define mf_conv_eval_sparse mfd_conv_eval_sparse_reference
#include "../conv_sparse.c"
#undef mf_conv_eval_sparse


/* The scratch after the column and a block of sums (mfd_sparse24_scratch): a word saying whether the table of
 * one-step constants after it holds them (conv_sparse24_constants), the table, an INT4 filter's unpacked
 * values, then the gathered windows. */
static uint32_t *conv_sparse24_after_sums(const mf_op *op, const mf_affine_data *d)
{
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    return (uint32_t *)(void *)((uint8_t *)mf_affine_scratch(op, d) + mfd_sparse24_column_bytes(k) +
                                (size_t)(channels < MFD_SPARSE24_BLOCK ? channels : MFD_SPARSE24_BLOCK) * sizeof(mfd_sums4));
}

static uint8_t *conv_sparse24_after_constants(const mf_op *op, const mf_affine_data *d)
{
    return (uint8_t *)conv_sparse24_after_sums(op, d) + mfd_sparse24_constants_bytes(op->inputs[1].dims[0]);
}

/* Once an eval: each channel's one-step constants with the output zero point folded in, for mfd_sparse24_store,
 * and the word before them set when every channel has them (mfd_one_step_folds) and the activation range is
 * all of int8 (else the passes requantize and clamp word by word). */
static void conv_sparse24_constants(const mf_op *op, const mf_affine_data *d)
{
    uint32_t *whole = conv_sparse24_after_sums(op, d);
    mfd_one_step *constants = (mfd_one_step *)(void *)(whole + 1);
    const mfd_requant *q = dsp_requant_table(op, d);
    const int32_t channels = op->inputs[1].dims[0];
    int32_t c;
    *whole = 0;
    if (d->act_min != INT8_MIN || d->act_max != INT8_MAX) {
        return;
    }
    for (c = 0; c < channels; ++c, q += d->channel_step) {
        if (!mfd_one_step_folds(q->right)) {
            return;
        }
        constants[c] = mfd_one_step_of(q, d->output_zero_point);
    }
    *whole = 1;
}

static int8_t *conv_sparse24_windows(const mf_op *op, const mf_affine_data *d)
{
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    return (int8_t *)conv_sparse24_after_constants(op, d) +
           (d->weights == MF_WEIGHTS_SPARSE_2_4_INT4 ? mfd_sparse24_unpacked_bytes(channels, k) : 0u);
}

/* The filter's int8 values (pairs of groups interleaved, mf_sparse.h) and its positions: the record's, or
 * for INT4 2:4 the values conv_sparse24_unpack wrote into the scratch. */
static void conv_sparse24_filter(const mf_op *op, const mf_affine_data *d, const int8_t **values,
                                 const uint8_t **positions)
{
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    const uint8_t *encoded = (const uint8_t *)d + d->weights_at + 4u * (size_t)channels; /* after the folded biases */
    if (d->weights == MF_WEIGHTS_SPARSE_2_4_INT4) {
        *values = (const int8_t *)conv_sparse24_after_constants(op, d);
        *positions = encoded + (size_t)channels * (size_t)(k / 4);
    } else {
        *values = (const int8_t *)encoded;
        *positions = encoded + (size_t)channels * (size_t)(k / 2);
    }
}

/* An INT4 2:4 filter's values (a byte per group, first in the low nibble) as the int8 layout with folded
 * biases: each whole pair of groups interleaved (first, first, second, second), a lone last group as is. */
static void conv_sparse24_unpack(const mf_op *op, const mf_affine_data *d)
{
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    const uint8_t *packed = (const uint8_t *)d + d->weights_at + 4u * (size_t)channels;
    int8_t *v = (int8_t *)conv_sparse24_after_constants(op, d);
    int32_t c;
    for (c = 0; c < channels; ++c) {
        int32_t g;
        for (g = 0; g + 1 < k / 4; g += 2, packed += 2, v += 4) {
            const uint32_t pair = (uint32_t)packed[0] | (uint32_t)packed[1] << 8; /* nibbles f0, s0, f1, s1 */
            v[0] = (int8_t)((int32_t)((pair & 0xFu) ^ 8u) - 8);
            v[1] = (int8_t)((int32_t)((pair >> 8 & 0xFu) ^ 8u) - 8);
            v[2] = (int8_t)((int32_t)((pair >> 4 & 0xFu) ^ 8u) - 8);
            v[3] = (int8_t)((int32_t)((pair >> 12 & 0xFu) ^ 8u) - 8);
        }
        if (k / 4 % 2 != 0) { /* a lone last group */
            v[0] = (int8_t)((int32_t)((*packed & 0xFu) ^ 8u) - 8);
            v[1] = (int8_t)((int32_t)((uint32_t)*packed >> 4 ^ 8u) - 8);
            ++packed;
            v += 2;
        }
    }
}

/* The pass of a single pixel (the last of a layer whose pixels are 1 mod 4): channel by channel with
 * mfd_sparse24_row, in fewer instructions than a column of four copies of it. */
static void conv_sparse24_pixel(const mf_op *op, const mf_affine_data *d, const int8_t *x, int8_t *out)
{
    const mfd_requant *requant = dsp_requant_table(op, d);
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const int8_t *v;
    const uint8_t *pos;
    const size_t row = ((size_t)k + 7u) / 8u;
    int32_t c;
    conv_sparse24_filter(op, d, &v, &pos);
    for (c = 0; c < channels; ++c, v += k / 2, pos += row) {
        const mfd_requant q = requant[c * d->channel_step];
        out[c] = mfd_output(mfd_sparse24_row(x, v, pos, k, folded[c]), &q, d->output_zero_point, d->act_min, d->act_max);
    }
}

/* A conv_sparse_pass: every channel of a 2:4 filter with folded biases, through the column in the scratch,
 * a block of channels' sums at a time. */
static void conv_sparse24_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4],
                               const int32_t stride[4], int32_t run, int32_t count, int8_t *out)
{
    const mfd_requant *requant = dsp_requant_table(op, d);
    uint32_t *column = (uint32_t *)mf_affine_scratch(op, d);
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    mfd_sums4 *sums = (mfd_sums4 *)(void *)((uint8_t *)column + mfd_sparse24_column_bytes(k));
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const int8_t *v;
    const uint8_t *pos;
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    const mfd_requant *q = requant;
    const int32_t step = d->channel_step;
    const int8_t *pixels[4];
    int32_t strides[4];
    int8_t *rows[4]; /* each pixel's next output; a missing pixel's is the last one's (the same values) */
    const uint32_t *whole = conv_sparse24_after_sums(op, d); /* and the channels' constants after it */
    int32_t first;
    int32_t i;
    conv_sparse24_filter(op, d, &v, &pos);
    if (count == 1) {
        conv_sparse24_pixel(op, d, x[0], out);
        return;
    }
    for (i = 0; i < 4; ++i) { /* missing pixels repeat the last one */
        pixels[i] = x[i < count ? i : count - 1];
        strides[i] = stride[i < count ? i : count - 1];
        rows[i] = out + (size_t)(i < count ? i : count - 1) * (size_t)channels;
    }
    mfd_sparse24_column(pixels, strides, run, k, column);
    for (first = 0; first < channels; first += MFD_SPARSE24_BLOCK) {
        const int32_t block = channels - first < MFD_SPARSE24_BLOCK ? channels - first : MFD_SPARSE24_BLOCK;
        uint32_t *words = (uint32_t *)(void *)sums; /* channel c's four outputs over its sums, read first */
        int8_t *row0 = rows[0], *row1 = rows[1], *row2 = rows[2], *row3 = rows[3];
        int32_t c;
        mfd_sparse24_block(column, &v, &pos, k, folded + first, block, sums);
        if (count == 4 && *whole) { /* pixel p's outputs at row0 + p * channels */
            mfd_sparse24_store(sums, (const mfd_one_step *)(const void *)(whole + 1) + first, block, row0, channels);
            rows[0] = row0 + block;
            continue;
        }
        for (c = 0; c < block; ++c, q += step) {
            const mfd_sums4 s = sums[c];
            if (MFD_LIKELY(q->right >= 2)) { /* the shift's constants set up once for the four outputs */
                const mfd_one_step constants = mfd_one_step_of(q, 0);
                words[c] = mfd_clamp4(mfd_requantize_one_step(s.a0, constants), mfd_requantize_one_step(s.a1, constants),
                                      mfd_requantize_one_step(s.a2, constants), mfd_requantize_one_step(s.a3, constants), o);
            } else {
                const mfd_requant r = *q;
                words[c] = mfd_outputs4(s.a0, s.a1, s.a2, s.a3, &r, &r, &r, &r, o);
            }
        }
        for (c = 0; c + 4 <= block; c += 4) { /* apart from the requantization, which then keeps its values in registers */
            uint32_t pixel_words[4];
            mfd_sparse24_transpose(words + c, pixel_words);
            mfd_write32(row0 + c, pixel_words[0]);
            mfd_write32(row1 + c, pixel_words[1]);
            mfd_write32(row2 + c, pixel_words[2]);
            mfd_write32(row3 + c, pixel_words[3]);
        }
        for (; c < block; ++c) {
            row0[c] = (int8_t)(uint8_t)words[c];
            row1[c] = (int8_t)(uint8_t)(words[c] >> 8);
            row2[c] = (int8_t)(uint8_t)(words[c] >> 16);
            row3[c] = (int8_t)(uint8_t)(words[c] >> 24);
        }
        row0 += block;
        row1 += block;
        row2 += block;
        row3 += block;
        rows[0] = row0;
        rows[1] = row1;
        rows[2] = row2;
        rows[3] = row3;
    }
}

mf_status mf_conv_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    if ((d->weights != MF_WEIGHTS_SPARSE_2_4 && d->weights != MF_WEIGHTS_SPARSE_2_4_INT4) || !d->bias_folded ||
        d->variant != MFD_CONV_GEMM || d->channels_per_group != op->outputs[0].dims[3]) {
        return mfd_conv_eval_sparse_reference(op);
    }
    if (d->weights == MF_WEIGHTS_SPARSE_2_4_INT4) {
        conv_sparse24_unpack(op, d);
    }
    conv_sparse24_constants(op, d);
    conv_sparse_rows(op, d, conv_sparse24_pass, conv_sparse24_windows(op, d), 1);
    return MF_OK;
}
