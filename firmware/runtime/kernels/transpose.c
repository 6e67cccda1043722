/*
 * TRANSPOSE, int8: TFLM's reference_ops::Transpose. Output axis i is input
 * axis perm[i]; perm is a constant int32 vector and a true permutation.
 */
#include "mf_ops_common.h"

mf_status mf_transpose_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *perm = &op->inputs[1];
    const mf_tensor *out = &op->outputs[0];
    uint32_t seen = 0;
    mf_status status;
    int32_t axis;
    *scratch_bytes = 0;
    if (op->input_count != 2 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (in->type != MF_INT8 || out->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (in->rank != out->rank || in->rank < 1 || in->rank > MF_MAX_DIMS) {
        return MF_ERR_BAD_MODEL;
    }
    if (!mf_dims_positive(in)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_check_const_i32(perm, in->rank);
    if (status != MF_OK) {
        return status;
    }
    for (axis = 0; axis < in->rank; ++axis) {
        const int32_t source = mf_const_i32(perm, axis);
        if (source < 0 || source >= in->rank || (seen & (1u << source)) != 0) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        seen |= 1u << source;
        if (out->dims[axis] != in->dims[source]) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return MF_OK;
}

mf_status mf_transpose_eval(const mf_op *op)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *out = &op->outputs[0];
    const int8_t *src = (const int8_t *)in->data;
    int8_t *dst = (int8_t *)out->data;
    const int32_t rank = out->rank;
    const int32_t count = mf_tensor_flat_size(out);
    int32_t in_strides[MF_MAX_DIMS];
    int32_t strides[MF_MAX_DIMS]; /* input stride of each output axis */
    int32_t index[MF_MAX_DIMS] = {0};
    int32_t offset = 0;
    int32_t axis;
    int32_t i;
    mf_row_major_strides(in, in_strides);
    for (axis = 0; axis < rank; ++axis) {
        strides[axis] = in_strides[mf_const_i32(&op->inputs[1], axis)];
    }
    for (i = 0; i < count; ++i) {
        dst[i] = src[offset];
        for (axis = rank - 1; axis >= 0; --axis) {
            offset += strides[axis];
            if (++index[axis] < out->dims[axis]) {
                break;
            }
            offset -= strides[axis] * out->dims[axis];
            index[axis] = 0;
        }
    }
    return MF_OK;
}
