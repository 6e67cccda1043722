/* CONV_2D and DEPTHWISE_CONV_2D on float32: TFLM reference_ops::Conv and
 * DepthwiseConv, each output summed over filter rows, columns, then channels
 * (products added one by one, never fused), the bias added last, then clamped. */
#include "mf_affine.h"
#include "mf_float.h"

/* The op-data record: activation range and the window (mf_affine_window). */
typedef struct conv_float_data {
    mf_float_range range;
    mf_affine_data window;
} conv_float_data;

static mf_status conv_float_prepare(const mf_op *op, mf_affine_kind kind, size_t *scratch_bytes)
{
    conv_float_data d;
    mf_status status = mf_float_check(op, 2, 3);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (op->inputs[0].rank != 4 || op->inputs[1].rank != 4 || op->outputs[0].rank != 4 ||
        (kind == MF_AFFINE_DEPTHWISE && op->inputs[1].dims[0] != 1)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_affine_window(op, kind, &d.window);
    if (status == MF_OK && op->input_count == 3 && op->inputs[2].rank >= 0 &&
        mf_tensor_flat_size(&op->inputs[2]) != d.window.channels) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status == MF_OK) {
        status = mf_activation_range_float(mf_affine_activation(op, kind), &d.range);
    }
    return status == MF_OK ? mf_float_store(op, &d, sizeof d) : status;
}

mf_status mf_conv_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    return conv_float_prepare(op, MF_AFFINE_CONV, scratch_bytes);
}

mf_status mf_depthwise_conv_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    return conv_float_prepare(op, MF_AFFINE_DEPTHWISE, scratch_bytes);
}

/* The bias of output channel oc, 0 without one. */
static float conv_float_bias(const mf_op *op, int32_t oc)
{
    return op->input_count == 3 && op->inputs[2].data != NULL ? ((const float *)op->inputs[2].data)[oc] : 0.0f;
}

mf_status mf_conv_float_eval(const mf_op *op)
{
    const conv_float_data *d = (const conv_float_data *)op->data;
    const mf_affine_data *g = &d->window;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const float *in = (const float *)input->data;
    const float *w = (const float *)filter->data;
    float *out = (float *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    int32_t b;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * g->stride_h - g->pad_h;
            float *out_row = out + ((size_t)b * out_h + oy) * out_w * out_c;
            int32_t oc;
            /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t group = oc / g->channels_per_group;
                int32_t ox;
                for (ox = 0; ox < out_w; ++ox) {
                    const int32_t in_x0 = ox * g->stride_w - g->pad_w;
                    float total = 0.0f;
                    int32_t fy;
                    for (fy = 0; fy < f_h; ++fy) {
                        const int32_t in_y = in_y0 + g->dilation_h * fy;
                        int32_t fx;
                        if (in_y < 0 || in_y >= in_h) {
                            continue;
                        }
                        for (fx = 0; fx < f_w; ++fx) {
                            const int32_t in_x = in_x0 + g->dilation_w * fx;
                            const float *src;
                            const float *wt;
                            int32_t c;
                            if (in_x < 0 || in_x >= in_w) {
                                continue;
                            }
                            src = in + (((size_t)b * in_h + in_y) * in_w + in_x) * in_c + (size_t)group * f_c;
                            wt = w + (((size_t)oc * f_h + fy) * f_w + fx) * f_c;
                            for (c = 0; c < f_c; ++c) {
                                total += src[c] * wt[c];
                            }
                        }
                    }
                    out_row[(size_t)ox * out_c + oc] =
                        mf_clamp_float(total + conv_float_bias(op, oc), d->range.act_min, d->range.act_max);
                }
            }
        }
    }
    return MF_OK;
}

mf_status mf_depthwise_conv_float_eval(const mf_op *op)
{
    const conv_float_data *d = (const conv_float_data *)op->data;
    const mf_affine_data *g = &d->window;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const float *in = (const float *)input->data;
    const float *w = (const float *)filter->data;
    float *out = (float *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    int32_t b;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * g->stride_h - g->pad_h;
            float *out_row = out + ((size_t)b * out_h + oy) * out_w * out_c;
            int32_t oc;
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t ic = oc / g->channels_per_group;
                int32_t ox;
                for (ox = 0; ox < out_w; ++ox) {
                    const int32_t in_x0 = ox * g->stride_w - g->pad_w;
                    float total = 0.0f;
                    int32_t fy;
                    for (fy = 0; fy < f_h; ++fy) {
                        const int32_t in_y = in_y0 + g->dilation_h * fy;
                        int32_t fx;
                        if (in_y < 0 || in_y >= in_h) {
                            continue;
                        }
                        for (fx = 0; fx < f_w; ++fx) {
                            const int32_t in_x = in_x0 + g->dilation_w * fx;
                            if (in_x < 0 || in_x >= in_w) {
                                continue;
                            }
                            total += in[(((size_t)b * in_h + in_y) * in_w + in_x) * in_c + ic] *
                                     w[((size_t)fy * f_w + fx) * out_c + oc];
                        }
                    }
                    out_row[(size_t)ox * out_c + oc] =
                        mf_clamp_float(total + conv_float_bias(op, oc), d->range.act_min, d->range.act_max);
                }
            }
        }
    }
    return MF_OK;
}
