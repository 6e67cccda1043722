/* CONV_2D with a sparse filter of a prepared image (mf_sparse.h): only the
 * stored weights are multiplied; outputs are the dense kernel's (conv.c). */
#include "mf_sparse.h"

/* 1x1 filters (biases folded): four output pixels at a time. */
static void conv_sparse_pointwise(const mf_op *op, const mf_affine_data *d, const mf_requant *requant)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t pixels = output->dims[0] * out_h * out_w;
    const int8_t *x[4];
    int32_t first = 0;
    int32_t p;
    for (p = 0; p < pixels; ++p) {
        const int32_t ox = p % out_w, oy = p / out_w % out_h, b = p / (out_w * out_h);
        x[p - first] = in + (((size_t)b * in_h + (size_t)oy * d->stride_h) * in_w + (size_t)ox * d->stride_w) * in_c;
        if (p - first == 3 || p == pixels - 1) {
            mf_sparse24_pixels(op, d, requant, x, p - first + 1, out + (size_t)first * out_c);
            first = p + 1;
        }
    }
}

/* Any window: tap by tap, taps in the padding skipped as the dense kernel skips them. */
static void conv_sparse_window(const mf_op *op, const mf_affine_data *d, const mf_requant *requant)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    int32_t b;
    for (b = 0; b < output->dims[0]; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) { /* row by row, as the dense kernel (mf_overlap) */
            int32_t ox;
            for (ox = 0; ox < out_w; ++ox) {
                int32_t oc;
                for (oc = 0; oc < out_c; ++oc) {
                    const int32_t group = oc / d->channels_per_group;
                    mf_sparse_cursor cursor = mf_sparse_channel(op, d, oc);
                    int32_t tap = 0;
                    int32_t acc = 0;
                    int32_t fy;
                    for (fy = 0; fy < f_h; ++fy) {
                        const int32_t in_y = oy * d->stride_h - d->pad_h + d->dilation_h * fy;
                        int32_t fx;
                        for (fx = 0; fx < f_w; ++fx) {
                            const int32_t in_x = ox * d->stride_w - d->pad_w + d->dilation_w * fx;
                            const int inside = in_y >= 0 && in_y < in_h && in_x >= 0 && in_x < in_w;
                            const int8_t *src =
                                inside ? in + (((size_t)b * in_h + in_y) * in_w + in_x) * in_c + (size_t)group * f_c : NULL;
                            if (d->weights == MF_WEIGHTS_SPARSE_2_4) {
                                acc = src != NULL ? mf_sparse24_tap(&cursor, tap * (f_c / 4), f_c / 4, src, d->input_offset, acc)
                                                  : acc;
                                ++tap;
                            } else {
                                acc = mf_bitmap_tap(d, &cursor, src, f_c, acc);
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc = mf_wrap_add(acc, bias[oc]);
                    }
                    out[(((size_t)b * out_h + oy) * out_w + ox) * out_c + oc] = mf_affine_output(d, requant[oc * d->channel_step], acc);
                }
            }
        }
    }
}

mf_status mf_conv_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_table(op, d);
    if (d->bias_folded) {
        conv_sparse_pointwise(op, d, requant);
    } else {
        conv_sparse_window(op, d, requant);
    }
    return MF_OK;
}
