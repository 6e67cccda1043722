/* The pooling window shared by the int8 and float32 pools (mf_pool.h). */
#include "mf_pool.h"

enum { OPT_PADDING = 0, OPT_STRIDE_W = 1, OPT_STRIDE_H = 2, OPT_FILTER_W = 3, OPT_FILTER_H = 4 };

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
