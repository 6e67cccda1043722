/* The evals of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED that the
 * registry names: each runs the variant its op-data record names
 * (mf_affine_eval_variant, mf_eval_variants.h), from whichever kernel set is
 * built. A prepared firmware's runner calls the variants directly instead. */
#include "mf_affine.h"

mf_status mf_conv_eval(const mf_op *op)
{
    switch (mf_affine_eval_variant(MF_AFFINE_CONV, (const mf_affine_data *)op->data)) {
    case MF_EVAL_SPARSE:
        return mf_conv_eval_sparse(op);
    case MF_EVAL_INT4:
        return mf_conv_int4_eval(op);
    default:
        return mf_conv_eval_dense(op);
    }
}

mf_status mf_depthwise_conv_eval(const mf_op *op)
{
    switch (mf_affine_eval_variant(MF_AFFINE_DEPTHWISE, (const mf_affine_data *)op->data)) {
    case MF_EVAL_SPARSE:
        return mf_depthwise_conv_eval_sparse(op);
    case MF_EVAL_INT4:
        return mf_depthwise_conv_int4_eval(op);
    default:
        return mf_depthwise_conv_eval_dense(op);
    }
}

mf_status mf_fully_connected_eval(const mf_op *op)
{
    switch (mf_affine_eval_variant(MF_AFFINE_FULLY_CONNECTED, (const mf_affine_data *)op->data)) {
    case MF_EVAL_SPARSE:
        return mf_fully_connected_eval_sparse(op);
    case MF_EVAL_INT4:
        return mf_fully_connected_int4_eval(op);
    case MF_EVAL_FOLDED:
        return mf_fully_connected_eval_folded(op);
    default:
        return mf_fully_connected_eval_dense(op);
    }
}
