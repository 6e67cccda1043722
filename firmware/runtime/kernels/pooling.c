/* AVERAGE_POOL_2D and MAX_POOL_2D on int8: TFLM reference_integer_ops::AveragePool / MaxPool. */
#include "mf_pool.h"

enum { OPT_PADDING = 0, OPT_STRIDE_W = 1, OPT_STRIDE_H = 2, OPT_FILTER_W = 3, OPT_FILTER_H = 4 };

/* The op-data record. */
typedef struct pool_geometry {
    int32_t stride_h, stride_w, filter_h, filter_w, pad_h, pad_w, act_min, act_max;
} pool_geometry;

static mf_status pool_check(const mf_op *op, pool_geometry *g)
{
    const mf_tensor *output = &op->outputs[0];
    mf_pool_window window;
    mf_status status;
    if (op->input_count != 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (op->inputs[0].type != MF_INT8 || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (output->quant_count != 1) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_pool_window_check(op, &window);
    if (status != MF_OK) {
        return status;
    }
    g->stride_h = window.stride_h;
    g->stride_w = window.stride_w;
    g->filter_h = window.filter_h;
    g->filter_w = window.filter_w;
    g->pad_h = window.pad_h;
    g->pad_w = window.pad_w;
    return mf_activation_range_int8(mf_option_u8(&op->options, MF_POOL_ACTIVATION, MF_ACT_NONE), output, &g->act_min,
                                    &g->act_max);
}

mf_status mf_pool_window_check(const mf_op *op, mf_pool_window *g)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const int32_t padding = mf_option_u8(&op->options, OPT_PADDING, MF_PADDING_SAME);
    if (input->rank != 4 || output->rank != 4) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    g->stride_w = mf_option_i32(&op->options, OPT_STRIDE_W, 1);
    g->stride_h = mf_option_i32(&op->options, OPT_STRIDE_H, 1);
    g->filter_w = mf_option_i32(&op->options, OPT_FILTER_W, 1);
    g->filter_h = mf_option_i32(&op->options, OPT_FILTER_H, 1);
    if (g->stride_w < 1 || g->stride_h < 1 || g->filter_w < 1 || g->filter_h < 1 ||
        (padding != MF_PADDING_SAME && padding != MF_PADDING_VALID)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (output->dims[0] != input->dims[0] || output->dims[3] != input->dims[3] ||
        output->dims[1] != mf_conv_out_size(padding, input->dims[1], g->filter_h, g->stride_h, 1) ||
        output->dims[2] != mf_conv_out_size(padding, input->dims[2], g->filter_w, g->stride_w, 1)) {
        return MF_ERR_BAD_MODEL;
    }
    g->pad_h = mf_conv_padding(g->stride_h, 1, input->dims[1], g->filter_h, output->dims[1]);
    g->pad_w = mf_conv_padding(g->stride_w, 1, input->dims[2], g->filter_w, output->dims[2]);
    return MF_OK;
}

static mf_status pool_prepare(const mf_op *op, size_t *scratch_bytes)
{
    pool_geometry g;
    pool_geometry *record;
    const mf_status status = pool_check(op, &g);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (op->overlap != NULL) {
        op->overlap->allowed = 1;
        op->overlap->gap = mf_rowwise_overlap_gap(&op->inputs[0], &op->outputs[0], g.stride_h, g.pad_h);
    }
    record = (pool_geometry *)mf_op_data(op, sizeof g);
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    *record = g;
    return MF_OK;
}

/* One pass over every output, averaging or taking the maximum over its window. */
static mf_status pool_eval(const mf_op *op, int average)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const int8_t *in = (const int8_t *)input->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], depth = input->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2];
    const pool_geometry *g = (const pool_geometry *)op->data;
    int32_t b;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * g->stride_h - g->pad_h;
            const int32_t fy_start = mf_max_i32(0, -in_y0);
            const int32_t fy_end = mf_min_i32(g->filter_h, in_h - in_y0);
            int32_t ox;
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * g->stride_w - g->pad_w;
                const int32_t fx_start = mf_max_i32(0, -in_x0);
                const int32_t fx_end = mf_min_i32(g->filter_w, in_w - in_x0);
                int32_t c;
                for (c = 0; c < depth; ++c) {
                    int32_t acc = average ? 0 : INT8_MIN;
                    int32_t count = 0;
                    int32_t fy;
                    for (fy = fy_start; fy < fy_end; ++fy) {
                        int32_t fx;
                        for (fx = fx_start; fx < fx_end; ++fx) {
                            const int32_t v = in[(((size_t)b * in_h + in_y0 + fy) * in_w + in_x0 + fx) * depth + c];
                            acc = average ? acc + v : mf_max_i32(acc, v);
                            ++count;
                        }
                    }
                    if (average) {
                        if (count == 0) {
                            return MF_ERR_UNSUPPORTED_PARAM; /* TFLM fails the same way: a window off the image */
                        }
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    out[(((size_t)b * out_h + oy) * out_w + ox) * depth + c] = (int8_t)mf_clamp_i32(acc, g->act_min, g->act_max);
                }
            }
        }
    }
    return MF_OK;
}

mf_status mf_average_pool_prepare(const mf_op *op, size_t *scratch_bytes) { return pool_prepare(op, scratch_bytes); }

mf_status mf_average_pool_eval(const mf_op *op) { return pool_eval(op, 1); }

mf_status mf_max_pool_prepare(const mf_op *op, size_t *scratch_bytes) { return pool_prepare(op, scratch_bytes); }

mf_status mf_max_pool_eval(const mf_op *op) { return pool_eval(op, 0); }
