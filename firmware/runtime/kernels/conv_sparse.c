/* CONV_2D with a sparse filter of a prepared image (mf_sparse.h): only the
 * stored weights are multiplied; outputs are the dense kernel's (conv.c). */
#include <string.h>

#include "mf_sparse.h"

/* A pass over up to four output pixels of a 2:4 filter with folded biases (count 1 to 4, outputs at
 * out + i * C): pixel i's K inputs are rows of `run` bytes from x[i] on, stride[i] bytes apart (contiguous
 * where stride[i] == run); a lone pixel's (count 1) are contiguous. */
typedef void conv_sparse_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4],
                              const int32_t stride[4], int32_t run, int32_t count, int8_t *out);

/* The portable pass reads contiguous inputs (conv_sparse_rows with in_place 0). */
static void conv_sparse_portable_pass(const mf_op *op, const mf_affine_data *d, const int8_t *const x[4],
                                      const int32_t stride[4], int32_t run, int32_t count, int8_t *out)
{
    (void)stride;
    (void)run;
    mf_sparse24_pixels(op, d, mf_affine_table(op, d), x, count, out);
}

/* The window of the output pixel whose window starts at input (b, y0, x0), copied to `window` (K bytes,
 * [f_h][f_w][f_c]) with the input zero point at the taps in the padding: there (x + input offset) is 0, so
 * those taps add exactly nothing to the folded sums, as the dense kernel skips them. */
static void conv_sparse_gather(const mf_op *op, const mf_affine_data *d, const int8_t *image, int32_t y0, int32_t x0,
                               int8_t *window)
{
    const mf_tensor *input = &op->inputs[0];
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = op->inputs[1].dims[1], f_w = op->inputs[1].dims[2];
    const int8_t padding = (int8_t)-d->input_offset;
    const size_t tap_bytes = (size_t)in_c;
    int32_t fx0, fx1, fy;
    mf_taps_inside(x0, d->dilation_w, in_w, f_w, &fx0, &fx1);
    for (fy = 0; fy < f_h; ++fy, window += (size_t)f_w * tap_bytes) {
        const int32_t y = y0 + d->dilation_h * fy;
        const int8_t *first; /* the first tap inside */
        int32_t fx;
        if (y < 0 || y >= in_h || fx0 >= fx1) {
            memset(window, padding, (size_t)f_w * tap_bytes);
            continue;
        }
        first = image + ((size_t)y * in_w + (size_t)(x0 + d->dilation_w * fx0)) * tap_bytes;
        memset(window, padding, (size_t)fx0 * tap_bytes);
        if (d->dilation_w == 1) { /* the taps inside are one run of the input row */
            memcpy(window + (size_t)fx0 * tap_bytes, first, (size_t)(fx1 - fx0) * tap_bytes);
        } else {
            for (fx = fx0; fx < fx1; ++fx) {
                memcpy(window + (size_t)fx * tap_bytes, first + (size_t)(d->dilation_w * (fx - fx0)) * tap_bytes, tap_bytes);
            }
        }
        memset(window + (size_t)fx1 * tap_bytes, padding, (size_t)(f_w - fx1) * tap_bytes);
    }
}

/* 2:4 filters with folded biases, four output pixels a pass (row-major, so the output may overlap input rows
 * already consumed as in the dense kernel): a 1x1 filter reads each pixel's inputs in place; a larger window
 * is gathered first into `windows` (four of K bytes, mf_sparse_windows_bytes) unless `in_place` and the
 * window lies inside the input with rows of whole groups (dilation_w 1, f_w x f_c % 4 == 0): then its rows
 * are read in place too. */
static void conv_sparse_rows(const mf_op *op, const mf_affine_data *d, conv_sparse_pass *pass, int8_t *windows,
                             int in_place)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = op->inputs[1].dims[1], f_w = op->inputs[1].dims[2];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]) / out_c;
    const int pointwise = f_h * f_w == 1;
    const int rows_in_place = !pointwise && in_place && d->dilation_w == 1 && f_w * in_c % 4 == 0;
    const int32_t run = rows_in_place ? f_w * in_c : k; /* a gathered window's rows are contiguous */
    const int32_t pixels = output->dims[0] * out_h * out_w;
    const int8_t *x[4];
    int32_t stride[4];
    int32_t first = 0;
    int32_t p;
    for (p = 0; p < pixels; ++p) {
        const int32_t ox = p % out_w, oy = p / out_w % out_h, b = p / (out_w * out_h);
        const int32_t y0 = oy * d->stride_h - d->pad_h, x0 = ox * d->stride_w - d->pad_w;
        const int8_t *image = in + (size_t)b * in_h * in_w * in_c;
        const int lone = p == first && p == pixels - 1;
        stride[p - first] = run;
        if (pointwise) {
            x[p - first] = image + ((size_t)oy * d->stride_h * in_w + (size_t)ox * d->stride_w) * in_c;
        } else if (rows_in_place && !lone && y0 >= 0 && y0 + d->dilation_h * (f_h - 1) < in_h && x0 >= 0 &&
                   x0 + f_w <= in_w) {
            x[p - first] = image + ((size_t)y0 * in_w + (size_t)x0) * in_c;
            stride[p - first] = d->dilation_h * in_w * in_c;
        } else {
            int8_t *window = windows + (size_t)(p - first) * (size_t)k;
            conv_sparse_gather(op, d, image, y0, x0, window);
            x[p - first] = window;
        }
        if (p - first == 3 || p == pixels - 1) {
            pass(op, d, x, stride, run, p - first + 1, out + (size_t)first * out_c);
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
    for (fy = fy0; fy < fy1; ++fy) { /* grouped: each tap's f_c weights are whole groups */
        const int8_t *row = base + (size_t)(y0 + d->dilation_h * fy) * in_w * in_c;
        for (fx = fx0; fx < fx1; ++fx) {
            acc = mf_sparse24_tap(&cursor, (fy * f_w + fx) * groups, groups, row + (size_t)(x0 + d->dilation_w * fx) * in_c,
                                  d->input_offset, acc);
        }
    }
    return acc;
}

/* Bitmaps and grouped 2:4 filters, any window, pixel by pixel. */
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
        conv_sparse_rows(op, d, conv_sparse_portable_pass, (int8_t *)mf_affine_scratch(op, d), 0);
    } else {
        conv_sparse_window(op, d, mf_affine_table(op, d));
    }
    return MF_OK;
}
