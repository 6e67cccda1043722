/* CONV_2D with a sparse filter of a prepared image (mf_sparse.h): only the
 * stored weights are multiplied; outputs are the dense kernel's (conv.c). */
#include "mf_sparse.h"

/* A pass over up to four output pixels of a 1x1 2:4 filter (count 1 to 4, inputs x[i], outputs at out + i * C). */
typedef void conv_sparse_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4], int32_t count,
                              int8_t *out);

static void conv_sparse_portable_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4], int32_t count,
                                      int8_t *out)
{
    mf_sparse24_pixels(op, d, mf_affine_table(op, d), x, count, out);
}

/* 1x1 filters (biases folded): four output pixels a pass. */
static void conv_sparse_pointwise(const mf_op *op, const mf_affine_data *d, conv_sparse_pass *pass)
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
            pass(op, d, x, p - first + 1, out + (size_t)first * out_c);
            first = p + 1;
        }
    }
}

/* Channel oc's accumulator at one output pixel whose window starts at input (b, y0, x0): taps in the
 * padding skipped as the dense kernel skips them. 2:4 filters visit only the taps inside, a whole
 * filter row at once where its taps are contiguous in the input. */
static int32_t conv_sparse_acc(const mf_op *op, const mf_affine_data *d, int32_t oc, const int8_t *image, int32_t y0,
                               int32_t x0)
{
    const mf_tensor *input = &op->inputs[0];
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = op->inputs[1].dims[1], f_w = op->inputs[1].dims[2], f_c = op->inputs[1].dims[3];
    const int32_t groups = f_c / 4; /* 2:4 groups per tap */
    const int8_t *base = image + (size_t)(oc / d->channels_per_group) * f_c;
    mf_sparse_cursor cursor = mf_sparse_channel(op, d, oc);
    int32_t fy0, fy1, fx0, fx1, fy, fx;
    int32_t acc = 0;
    mf_taps_inside(y0, d->dilation_h, in_h, f_h, &fy0, &fy1);
    mf_taps_inside(x0, d->dilation_w, in_w, f_w, &fx0, &fx1);
    if (d->weights != MF_WEIGHTS_SPARSE_2_4) { /* a bitmap is read in order, the padding's bits too */
        for (fy = 0; fy < f_h; ++fy) {
            for (fx = 0; fx < f_w; ++fx) {
                const int inside = fy >= fy0 && fy < fy1 && fx >= fx0 && fx < fx1;
                const size_t at = ((size_t)(y0 + d->dilation_h * fy) * in_w + (size_t)(x0 + d->dilation_w * fx)) * in_c;
                acc = mf_bitmap_tap(d, &cursor, inside ? base + at : NULL, f_c, acc);
            }
        }
        return acc;
    }
    for (fy = fy0; fy < fy1 && fx0 < fx1; ++fy) {
        const int8_t *row = base + (size_t)(y0 + d->dilation_h * fy) * in_w * in_c;
        if (d->dilation_w == 1 && f_c == in_c) { /* the row's taps are one run of the input */
            acc = mf_sparse24_tap(&cursor, (fy * f_w + fx0) * groups, (fx1 - fx0) * groups, row + (size_t)(x0 + fx0) * in_c,
                                  d->input_offset, acc);
            continue;
        }
        for (fx = fx0; fx < fx1; ++fx) {
            acc = mf_sparse24_tap(&cursor, (fy * f_w + fx) * groups, groups, row + (size_t)(x0 + d->dilation_w * fx) * in_c,
                                  d->input_offset, acc);
        }
    }
    return acc;
}

/* Any window, pixel by pixel. */
static void conv_sparse_window(const mf_op *op, const mf_affine_data *d, const mf_requant *requant)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    int32_t b;
    for (b = 0; b < output->dims[0]; ++b) {
        const int8_t *image = in + (size_t)b * in_h * in_w * in_c;
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) { /* row by row, as the dense kernel (mf_overlap) */
            int32_t ox;
            for (ox = 0; ox < out_w; ++ox) {
                int8_t *pixel = out + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                int32_t oc;
                for (oc = 0; oc < out_c; ++oc) {
                    int32_t acc = conv_sparse_acc(op, d, oc, image, oy * d->stride_h - d->pad_h, ox * d->stride_w - d->pad_w);
                    if (bias != NULL) {
                        acc = mf_wrap_add(acc, bias[oc]);
                    }
                    pixel[oc] = mf_affine_output(d, requant[oc * d->channel_step], acc);
                }
            }
        }
    }
}

mf_status mf_conv_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    if (d->bias_folded) {
        conv_sparse_pointwise(op, d, conv_sparse_portable_pass);
    } else {
        conv_sparse_window(op, d, mf_affine_table(op, d));
    }
    return MF_OK;
}
