/* CONV_2D, int8 with per-channel (or per-tensor) int8 weights and int32 bias:
 * TFLM reference_integer_ops::ConvPerChannel, bit for bit. */
#include "mf_kernel.h"

enum { OPT_PADDING = 0, OPT_STRIDE_W = 1, OPT_STRIDE_H = 2, OPT_ACTIVATION = 3, OPT_DILATION_W = 4, OPT_DILATION_H = 5 };

typedef struct conv_geometry {
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
} conv_geometry;

static mf_status conv_check(const mf_op *op, conv_geometry *g)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t padding = mf_option_u8(&op->options, OPT_PADDING, MF_PADDING_SAME);
    int32_t out_channels;
    if (op->input_count < 2 || op->input_count > 3 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || filter->type != MF_INT8 || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (input->rank != 4 || filter->rank != 4 || output->rank != 4 || input->quant_count != 1 ||
        output->quant_count != 1 || filter->quant_count < 1 || !(output->scale > 0.0f)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    out_channels = filter->dims[0];
    if (filter->quant_count != 1 && (filter->quant_count != out_channels || filter->quant_dim != 0)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (op->input_count == 3 && op->inputs[2].rank >= 0) {
        const mf_tensor *bias = &op->inputs[2];
        if (bias->type != MF_INT32) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (mf_tensor_flat_size(bias) != out_channels) {
            return MF_ERR_BAD_MODEL;
        }
    }
    g->stride_w = mf_option_i32(&op->options, OPT_STRIDE_W, 1);
    g->stride_h = mf_option_i32(&op->options, OPT_STRIDE_H, 1);
    g->dilation_w = mf_option_i32(&op->options, OPT_DILATION_W, 1);
    g->dilation_h = mf_option_i32(&op->options, OPT_DILATION_H, 1);
    if (g->stride_w < 1 || g->stride_h < 1 || g->dilation_w < 1 || g->dilation_h < 1 ||
        (padding != MF_PADDING_SAME && padding != MF_PADDING_VALID) || filter->dims[3] < 1 ||
        input->dims[3] % filter->dims[3] != 0 || out_channels % (input->dims[3] / filter->dims[3]) != 0) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (output->dims[0] != input->dims[0] || output->dims[3] != out_channels ||
        output->dims[1] != mf_conv_out_size(padding, input->dims[1], filter->dims[1], g->stride_h, g->dilation_h) ||
        output->dims[2] != mf_conv_out_size(padding, input->dims[2], filter->dims[2], g->stride_w, g->dilation_w)) {
        return MF_ERR_BAD_MODEL;
    }
    g->pad_h = mf_conv_padding(g->stride_h, g->dilation_h, input->dims[1], filter->dims[1], output->dims[1]);
    g->pad_w = mf_conv_padding(g->stride_w, g->dilation_w, input->dims[2], filter->dims[2], output->dims[2]);
    return MF_OK;
}

mf_status mf_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    conv_geometry g;
    int32_t act_min;
    int32_t act_max;
    mf_status status = conv_check(op, &g);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (op->overlap != NULL) {
        op->overlap->allowed = 1;
        op->overlap->gap = mf_rowwise_overlap_gap(&op->inputs[0], &op->outputs[0], g.stride_h, g.pad_h);
    }
    return mf_activation_range_int8(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), &op->outputs[0], &act_min,
                                    &act_max);
}

mf_status mf_conv_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t per_group = out_c / (in_c / f_c);
    const int32_t input_offset = -input->zero_point;
    int32_t act_min;
    int32_t act_max;
    conv_geometry g;
    int32_t oc;
    int32_t b;
    mf_status status = conv_check(op, &g);
    if (status == MF_OK) {
        status = mf_activation_range_int8(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), output, &act_min,
                                          &act_max);
    }
    if (status != MF_OK) {
        return status;
    }
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * g.stride_h - g.pad_h;
            int8_t *out_row = out + ((size_t)b * out_h + oy) * out_w * out_c;
            /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t group = oc / per_group;
                int32_t multiplier;
                int shift;
                int32_t ox;
                mf_quantize_multiplier((double)input->scale * (double)mf_tensor_scale_at(filter, oc) / (double)output->scale,
                                       &multiplier, &shift);
                for (ox = 0; ox < out_w; ++ox) {
                    const int32_t in_x0 = ox * g.stride_w - g.pad_w;
                    int32_t acc = 0;
                    int32_t fy;
                    for (fy = 0; fy < f_h; ++fy) {
                        const int32_t in_y = in_y0 + g.dilation_h * fy;
                        int32_t fx;
                        if (in_y < 0 || in_y >= in_h) {
                            continue;
                        }
                        for (fx = 0; fx < f_w; ++fx) {
                            const int32_t in_x = in_x0 + g.dilation_w * fx;
                            const int8_t *src;
                            const int8_t *wt;
                            int32_t c;
                            if (in_x < 0 || in_x >= in_w) {
                                continue;
                            }
                            src = in + (((size_t)b * in_h + in_y) * in_w + in_x) * in_c + (size_t)group * f_c;
                            wt = w + (((size_t)oc * f_h + fy) * f_w + fx) * f_c;
                            for (c = 0; c < f_c; ++c) {
                                acc = mf_wrap_add(acc, (int32_t)wt[c] * ((int32_t)src[c] + input_offset));
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc = mf_wrap_add(acc, bias[oc]);
                    }
                    acc = mf_wrap_add(mf_mul_by_quantized_multiplier(acc, multiplier, shift), output->zero_point);
                    out_row[(size_t)ox * out_c + oc] = (int8_t)mf_clamp_i32(acc, act_min, act_max);
                }
            }
        }
    }
    return MF_OK;
}
