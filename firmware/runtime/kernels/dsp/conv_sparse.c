/* CONV_2D with a sparse filter on cores with the DSP extension (it replaces
 * kernels/conv_sparse.c in such builds): 1 x 1 filters in 2:4 four output
 * pixels at a time through an interleaved column (mfd_sparse24.h) in the
 * scratch dsp/conv.c planned for it; other filters and bitmaps take the
 * portable loops. Outputs are the dense kernel's. */
#include "dsp_affine.h"
#include "mfd_sparse24.h"

#define mf_conv_eval_sparse mfd_conv_eval_sparse_reference
#include "../conv_sparse.c"
#undef mf_conv_eval_sparse


/* A conv_sparse_pass: every channel of a 2:4 filter with folded biases, through the column in the scratch. */
static void conv_sparse24_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4], int32_t count,
                               int8_t *out)
{
    const mfd_requant *requant = dsp_requant_table(op, d);
    uint32_t *column = (uint32_t *)mf_affine_scratch(op, d);
    const int32_t channels = op->inputs[1].dims[0];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const int8_t *v = (const int8_t *)(folded + channels);
    const uint8_t *pos = (const uint8_t *)v + (size_t)channels * (size_t)(k / 2);
    const size_t row = ((size_t)k + 7u) / 8u;
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    const int8_t *pixels[4];
    int32_t c;
    int32_t i;
    for (i = 0; i < 4; ++i) { /* missing pixels repeat the last one, their sums unused */
        pixels[i] = x[i < count ? i : count - 1];
    }
    mfd_sparse24_column(pixels, k, column);
    for (c = 0; c < channels; ++c, v += k / 2, pos += row) {
        const mfd_requant q = requant[c * d->channel_step]; /* a copy: the int8 stores cannot alias it */
        mfd_sums4 s;
        uint32_t outputs;
        s.a0 = s.a1 = s.a2 = s.a3 = folded[c];
        s = mfd_sparse24_channel(column, v, pos, k, s);
        outputs = mfd_outputs4(s.a0, s.a1, s.a2, s.a3, &q, &q, &q, &q, o);
        if (count == 4) {
            out[c] = (int8_t)(uint8_t)outputs;
            out[channels + c] = (int8_t)(uint8_t)(outputs >> 8);
            out[2 * channels + c] = (int8_t)(uint8_t)(outputs >> 16);
            out[3 * channels + c] = (int8_t)(uint8_t)(outputs >> 24);
            continue;
        }
        for (i = 0; i < count; ++i) {
            out[(size_t)i * channels + c] = (int8_t)(uint8_t)(outputs >> (8 * i));
        }
    }
}

mf_status mf_conv_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    if (d->weights != MF_WEIGHTS_SPARSE_2_4 || !d->bias_folded || d->variant != MFD_CONV_GEMM ||
        d->channels_per_group != op->outputs[0].dims[3]) {
        return mfd_conv_eval_sparse_reference(op);
    }
    conv_sparse_pointwise(op, d, conv_sparse24_pass);
    return MF_OK;
}
