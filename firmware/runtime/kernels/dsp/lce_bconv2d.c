/* LceBconv2d for cores with the DSP extension, bit for bit the portable kernel's output (it replaces
 * kernels/lce_bconv2d.c in such builds and shares its prepare and output transform).
 *
 * Per output position the receptive field is gathered once into a column of packed words in the scratch
 * (taps outside the input as zero words, LCE's one-padding); each output channel is then one contiguous
 * binary dot product of that column with the channel's filter (mfd_binary.h). Scratch: one column. */
#include "mfd_binary.h"

#define mf_lce_bconv2d_prepare mfd_lce_bconv2d_prepare_reference
#define mf_lce_bconv2d_eval mfd_lce_bconv2d_eval_reference
#include "../lce_bconv2d.c"
#undef mf_lce_bconv2d_prepare
#undef mf_lce_bconv2d_eval

mf_status mf_lce_bconv2d_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_status status = mfd_lce_bconv2d_prepare_reference(op, scratch_bytes);
    if (status == MF_OK || status == MF_ERR_ARENA_TOO_SMALL) { /* checks passed: the scratch is known either way */
        const mf_tensor *filter = &op->inputs[1];
        *scratch_bytes = (size_t)filter->dims[1] * (size_t)filter->dims[2] * (size_t)filter->dims[3] * sizeof(uint32_t);
    }
    return status;
}

mf_status mf_lce_bconv2d_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const bconv_data *d = (const bconv_data *)op->data;
    const uint32_t *in = (const uint32_t *)input->data;
    const uint32_t *filter = (const uint32_t *)op->inputs[1].data;
    uint32_t *column = (uint32_t *)op->scratch;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], out_h = output->dims[1], out_w = output->dims[2];
    const int32_t column_words = d->filter_h * d->filter_w * d->words;
    int32_t b, oy, ox, c;
    if (((uintptr_t)filter & 3u) != 0 || column == NULL) {
        return mfd_lce_bconv2d_eval_reference(op); /* filters are word-aligned in converted models and images */
    }
    for (b = 0; b < input->dims[0]; ++b) {
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                const size_t pixel = ((size_t)b * out_h + oy) * out_w + ox;
                uint32_t *to = column;
                uint32_t packed = 0;
                int32_t fy, fx;
                for (fy = 0; fy < d->filter_h; ++fy) {
                    const int32_t iy = oy * d->stride_h - d->pad_h + fy * d->dilation_h;
                    for (fx = 0; fx < d->filter_w; ++fx) {
                        const int32_t ix = ox * d->stride_w - d->pad_w + fx * d->dilation_w;
                        int32_t w;
                        if (iy >= 0 && iy < in_h && ix >= 0 && ix < in_w) {
                            const uint32_t *from = in + (((size_t)b * in_h + iy) * in_w + ix) * d->words;
                            for (w = 0; w < d->words; ++w) {
                                *to++ = from[w];
                            }
                        } else {
                            for (w = 0; w < d->words; ++w) {
                                *to++ = 0u;
                            }
                        }
                    }
                }
                for (c = 0; c < d->out_c; ++c) {
                    const int32_t accum = mfd_xor_popcount(column, filter + (size_t)c * column_words, column_words);
                    bconv_output(op, d, pixel, c, accum, &packed);
                }
            }
        }
    }
    if (d->zero_correction) {
        bconv_apply_correction(d, input, output, (const float *)(d + 1) + d->transform_floats);
    }
    return MF_OK;
}
