/* Helpers shared by the elementwise and data-movement kernels. */
#ifndef MF_OPS_COMMON_H
#define MF_OPS_COMMON_H

#include <float.h>
#include <string.h>

#include "mf_kernel.h"

/* Element `index` of a constant int32 tensor (shapes, axes, paddings), read
 * with memcpy because model buffers promise no alignment. */
static inline int32_t mf_const_i32(const mf_tensor *t, int32_t index)
{
    int32_t value;
    memcpy(&value, (const uint8_t *)t->data + (size_t)index * sizeof value, sizeof value);
    return value;
}

/* A constant int32 vector of exactly `count` elements (perm, paddings, begin...). */
static inline mf_status mf_check_const_i32(const mf_tensor *t, int32_t count)
{
    if (t->type != MF_INT32) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (!t->is_constant || t->data == NULL) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return mf_tensor_flat_size(t) == count ? MF_OK : MF_ERR_BAD_MODEL;
}

/* Every dimension at least 1. An empty tensor (a 0 dimension) may carry huge
 * other dimensions whose products overflow index arithmetic, and the
 * converter never emits one, so the shape kernels refuse it. */
static inline int mf_dims_positive(const mf_tensor *t)
{
    int32_t axis;
    for (axis = 0; axis < t->rank; ++axis) {
        if (t->dims[axis] < 1) {
            return 0;
        }
    }
    return 1;
}

/* Row-major element strides of a tensor's dims. */
static inline void mf_row_major_strides(const mf_tensor *t, int32_t *strides)
{
    int32_t stride = 1;
    int32_t axis;
    for (axis = t->rank - 1; axis >= 0; --axis) {
        strides[axis] = stride;
        stride *= t->dims[axis];
    }
}

/* An int8 tensor's quantization is usable: finite positive scale (so scale
 * ratios stay finite in double), zero point in int8 (so offsets and sums of
 * int8 values cannot overflow int32). */
static inline int mf_int8_quantization_ok(const mf_tensor *t)
{
    return t->scale > 0.0f && t->scale <= FLT_MAX && t->zero_point >= INT8_MIN && t->zero_point <= INT8_MAX;
}

/* One int8 input and one int8 output, both quantized, with the same element count. */
static inline mf_status mf_unary_check_int8(const mf_op *op)
{
    if (op->input_count != 1 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (op->inputs[0].type != MF_INT8 || op->outputs[0].type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (!mf_int8_quantization_ok(&op->inputs[0]) || !mf_int8_quantization_ok(&op->outputs[0])) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    return mf_tensor_flat_size(&op->inputs[0]) == mf_tensor_flat_size(&op->outputs[0]) ? MF_OK : MF_ERR_BAD_MODEL;
}

#endif /* MF_OPS_COMMON_H */
