/* DEPTHWISE_CONV_2D, int8 with per-channel int8 weights and int32 bias:
 * TFLM reference_integer_ops::DepthwiseConvPerChannel, bit for bit. */
#include "mf_kernel.h"

enum {
    OPT_PADDING = 0,
    OPT_STRIDE_W = 1,
    OPT_STRIDE_H = 2,
    OPT_DEPTH_MULTIPLIER = 3,
    OPT_ACTIVATION = 4,
    OPT_DILATION_W = 5,
    OPT_DILATION_H = 6
};

typedef struct dw_geometry {
    int32_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w, act_min, act_max;
} dw_geometry;

static mf_status dw_check(const mf_op *op, dw_geometry *g)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t padding = mf_option_u8(&op->options, OPT_PADDING, MF_PADDING_SAME);
    const int32_t multiplier = mf_option_i32(&op->options, OPT_DEPTH_MULTIPLIER, 0);
    int32_t out_channels;
    if (op->input_count < 2 || op->input_count > 3 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || filter->type != MF_INT8 || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (input->rank != 4 || filter->rank != 4 || output->rank != 4 || input->quant_count != 1 ||
        output->quant_count != 1 || filter->quant_count < 1 || !(output->scale > 0.0f) || filter->dims[0] != 1) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    out_channels = filter->dims[3];
    if (filter->quant_count != 1 && (filter->quant_count != out_channels || filter->quant_dim != 3)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (op->input_count == 3 && op->inputs[2].rank >= 0) {
        if (op->inputs[2].type != MF_INT32) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (mf_tensor_flat_size(&op->inputs[2]) != out_channels) {
            return MF_ERR_BAD_MODEL;
        }
    }
    g->stride_w = mf_option_i32(&op->options, OPT_STRIDE_W, 1);
    g->stride_h = mf_option_i32(&op->options, OPT_STRIDE_H, 1);
    g->dilation_w = mf_option_i32(&op->options, OPT_DILATION_W, 1);
    g->dilation_h = mf_option_i32(&op->options, OPT_DILATION_H, 1);
    if (g->stride_w < 1 || g->stride_h < 1 || g->dilation_w < 1 || g->dilation_h < 1 || multiplier < 1 ||
        (padding != MF_PADDING_SAME && padding != MF_PADDING_VALID)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (output->dims[0] != input->dims[0] || output->dims[3] != out_channels ||
        (int64_t)input->dims[3] * multiplier != out_channels ||
        output->dims[1] != mf_conv_out_size(padding, input->dims[1], filter->dims[1], g->stride_h, g->dilation_h) ||
        output->dims[2] != mf_conv_out_size(padding, input->dims[2], filter->dims[2], g->stride_w, g->dilation_w)) {
        return MF_ERR_BAD_MODEL;
    }
    g->pad_h = mf_conv_padding(g->stride_h, g->dilation_h, input->dims[1], filter->dims[1], output->dims[1]);
    g->pad_w = mf_conv_padding(g->stride_w, g->dilation_w, input->dims[2], filter->dims[2], output->dims[2]);
    return mf_activation_range_int8(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), output, &g->act_min,
                                    &g->act_max);
}

mf_status mf_depthwise_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    dw_geometry g;
    const mf_status status = dw_check(op, &g);
    *scratch_bytes = 0;
    if (status == MF_OK && op->overlap != NULL) {
        op->overlap->allowed = 1;
        op->overlap->gap = mf_rowwise_overlap_gap(&op->inputs[0], &op->outputs[0], g.stride_h, g.pad_h);
    }
    return status;
}

mf_status mf_depthwise_conv_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t depth_multiplier = out_c / (in_c > 0 ? in_c : 1);
    const int32_t input_offset = -input->zero_point;
    dw_geometry g;
    int32_t oc;
    int32_t b;
    mf_status status = dw_check(op, &g);
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
                const int32_t ic = oc / depth_multiplier;
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
                            int32_t value;
                            if (in_x < 0 || in_x >= in_w) {
                                continue;
                            }
                            value = in[(((size_t)b * in_h + in_y) * in_w + in_x) * in_c + ic];
                            acc = mf_wrap_add(acc, (int32_t)w[((size_t)fy * f_w + fx) * out_c + oc] * (value + input_offset));
                        }
                    }
                    if (bias != NULL) {
                        acc = mf_wrap_add(acc, bias[oc]);
                    }
                    acc = mf_wrap_add(mf_mul_by_quantized_multiplier(acc, multiplier, shift), output->zero_point);
                    out_row[(size_t)ox * out_c + oc] = (int8_t)mf_clamp_i32(acc, g.act_min, g.act_max);
                }
            }
        }
    }
    return MF_OK;
}
