/* AVERAGE_POOL_2D and MAX_POOL_2D on float32: TFLM reference_ops::AveragePool
 * (the window's values summed in row order, divided by their count as a float)
 * and MaxPool (std::max from the lowest float: a NaN input is skipped). */
#include <float.h>

#include "mf_float.h"
#include "mf_pool.h"

/* The op-data record. */
typedef struct pool_float_data {
    mf_pool_window window;
    mf_float_range range;
} pool_float_data;

static mf_status pool_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    pool_float_data d;
    mf_status status = mf_float_check(op, 1, 1);
    *scratch_bytes = 0;
    if (status == MF_OK) {
        status = mf_pool_window_check(op, &d.window);
    }
    if (status == MF_OK) {
        status = mf_activation_range_float(mf_option_u8(&op->options, MF_POOL_ACTIVATION, MF_ACT_NONE), &d.range);
    }
    if (status != MF_OK) {
        return status;
    }
    if (op->overlap != NULL) {
        op->overlap->allowed = 1;
        op->overlap->gap = mf_rowwise_overlap_gap(&op->inputs[0], &op->outputs[0], d.window.stride_h, d.window.pad_h);
    }
    return mf_float_store(op, &d, sizeof d);
}

static mf_status pool_float_eval(const mf_op *op, int average)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const float *in = (const float *)input->data;
    float *out = (float *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], depth = input->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2];
    const pool_float_data *d = (const pool_float_data *)op->data;
    const mf_pool_window *g = &d->window;
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
                    float acc = average ? 0.0f : -FLT_MAX;
                    float count = 0.0f;
                    int32_t fy;
                    for (fy = fy_start; fy < fy_end; ++fy) {
                        int32_t fx;
                        for (fx = fx_start; fx < fx_end; ++fx) {
                            const float v = in[(((size_t)b * in_h + in_y0 + fy) * in_w + in_x0 + fx) * depth + c];
                            if (average) {
                                acc += v;
                            } else if (acc < v) {
                                acc = v;
                            }
                            count += 1.0f;
                        }
                    }
                    if (average) {
                        if (count == 0.0f) {
                            return MF_ERR_UNSUPPORTED_PARAM; /* TFLM fails the same way: a window off the image */
                        }
                        acc = acc / count;
                    }
                    out[(((size_t)b * out_h + oy) * out_w + ox) * depth + c] = mf_clamp_float(acc, d->range.act_min, d->range.act_max);
                }
            }
        }
    }
    return MF_OK;
}

mf_status mf_average_pool_float_prepare(const mf_op *op, size_t *scratch_bytes) { return pool_float_prepare(op, scratch_bytes); }

mf_status mf_average_pool_float_eval(const mf_op *op) { return pool_float_eval(op, 1); }

mf_status mf_max_pool_float_prepare(const mf_op *op, size_t *scratch_bytes) { return pool_float_prepare(op, scratch_bytes); }

mf_status mf_max_pool_float_eval(const mf_op *op) { return pool_float_eval(op, 0); }
