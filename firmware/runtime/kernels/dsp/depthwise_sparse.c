/* DEPTHWISE_CONV_2D with a 2:4 filter for cores with the DSP extension: kernels/depthwise_sparse.c
 * (expanded, then the loop prepare chose, through this set's dispatching dense eval), and one eval
 * per DSP loop, which prepared firmware calls directly (mf_eval_variants.h) so it links that loop alone. */
#include "../depthwise_sparse.c"

mf_status mfd_depthwise_eval_channels_sparse(const mf_op *op) { return mf_sparse_run_expanded(op, mfd_depthwise_eval_channels); }

mf_status mfd_depthwise_eval_one_input_channel_sparse(const mf_op *op)
{
    return mf_sparse_run_expanded(op, mfd_depthwise_eval_one_input_channel);
}

mf_status mfd_depthwise_eval_3x3_sparse(const mf_op *op) { return mf_sparse_run_expanded(op, mfd_depthwise_eval_3x3); }

mf_status mfd_depthwise_eval_3x3_nhwc_sparse(const mf_op *op) { return mf_sparse_run_expanded(op, mfd_depthwise_eval_3x3_nhwc); }
