/*
 * PAD, int8: TFLM's reference_ops::Pad. Constant paddings [rank, 2]; the pad
 * value is the output zero point (real 0); the input is copied as it is (the
 * converter gives input and output the same quantization).
 */
#include "mf_ops_common.h"

mf_status mf_pad_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *paddings = &op->inputs[1];
    const mf_tensor *out = &op->outputs[0];
    mf_status status;
    int32_t axis;
    *scratch_bytes = 0;
    if (op->input_count != 2 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (in->type != MF_INT8 || out->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (in->rank != out->rank || in->rank > MF_MAX_DIMS) {
        return MF_ERR_BAD_MODEL;
    }
    if (!mf_dims_positive(in)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_check_const_i32(paddings, 2 * in->rank);
    if (status != MF_OK) {
        return status;
    }
    for (axis = 0; axis < in->rank; ++axis) {
        const int32_t before = mf_const_i32(paddings, 2 * axis);
        const int32_t after = mf_const_i32(paddings, 2 * axis + 1);
        if (before < 0 || after < 0) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        if ((int64_t)in->dims[axis] + before + after != out->dims[axis]) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return MF_OK;
}

mf_status mf_pad_eval(const mf_op *op)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *out = &op->outputs[0];
    const int8_t *src = (const int8_t *)in->data;
    int8_t *dst = (int8_t *)out->data;
    const int8_t pad_value = (int8_t)out->zero_point;
    const int32_t rank = out->rank;
    int32_t index[MF_MAX_DIMS] = {0};
    int32_t in_strides[MF_MAX_DIMS];
    int32_t rows = 1;
    int32_t row;
    int32_t row_length;
    int32_t before;
    int32_t axis;
    if (rank == 0) {
        dst[0] = src[0];
        return MF_OK;
    }
    mf_row_major_strides(in, in_strides);
    for (axis = 0; axis < rank - 1; ++axis) {
        rows *= out->dims[axis];
    }
    row_length = out->dims[rank - 1];
    before = mf_const_i32(&op->inputs[1], 2 * (rank - 1));
    /* Rows along the last axis: all padding, or padding around one input row. */
    for (row = 0; row < rows; ++row) {
        int32_t src_offset = 0;
        int inside = 1;
        for (axis = 0; axis < rank - 1 && inside; ++axis) {
            const int32_t in_index = index[axis] - mf_const_i32(&op->inputs[1], 2 * axis);
            inside = in_index >= 0 && in_index < in->dims[axis];
            src_offset += inside ? in_index * in_strides[axis] : 0;
        }
        if (inside) {
            const int32_t copied = in->dims[rank - 1];
            memset(dst, pad_value, (size_t)before);
            memcpy(dst + before, src + src_offset, (size_t)copied);
            memset(dst + before + copied, pad_value, (size_t)(row_length - before - copied));
        } else {
            memset(dst, pad_value, (size_t)row_length);
        }
        dst += row_length;
        for (axis = rank - 2; axis >= 0; --axis) {
            if (++index[axis] < out->dims[axis]) {
                break;
            }
            index[axis] = 0;
        }
    }
    return MF_OK;
}
