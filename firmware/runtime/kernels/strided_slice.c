/*
 * STRIDED_SLICE, int8: TFLM's micro reference. Shapes are left-padded to 5D
 * (padded axes take everything); per axis, begin/end are wrapped when
 * negative, clamped, overridden by the begin/end masks, and a shrunk axis
 * takes one element. TFLM ignores ellipsis_mask, new_axis_mask and offset, so
 * a model that sets them is refused rather than computed differently.
 */
#include "mf_ops_common.h"

enum { MF_SLICE_DIMS = 5 };

typedef struct mf_slice_plan {
    int32_t start[MF_SLICE_DIMS];
    int32_t stop[MF_SLICE_DIMS];
    int32_t stride[MF_SLICE_DIMS];
    int32_t count[MF_SLICE_DIMS];    /* elements taken along each axis */
    int32_t in_stride[MF_SLICE_DIMS]; /* row-major element strides of the padded input */
} mf_slice_plan;

static int32_t mf_slice_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return hi < v ? hi : (v < lo ? lo : v);
}

/* Builds the 5D plan; the three index tensors must already be checked. */
static void mf_slice_build(const mf_op *op, mf_slice_plan *plan)
{
    const mf_tensor *in = &op->inputs[0];
    const int32_t pad = MF_SLICE_DIMS - in->rank;
    const uint32_t begin_mask = (uint32_t)mf_option_i32(&op->options, 0, 0);
    const uint32_t end_mask = (uint32_t)mf_option_i32(&op->options, 1, 0);
    const uint32_t shrink_mask = (uint32_t)mf_option_i32(&op->options, 4, 0);
    int32_t stride = 1;
    int32_t axis;
    for (axis = MF_SLICE_DIMS - 1; axis >= 0; --axis) {
        const int32_t source = axis - pad; /* axis in the unpadded tensor, < 0 when padded */
        const int32_t size = source < 0 ? 1 : in->dims[source];
        const int32_t step = source < 0 ? 1 : mf_const_i32(&op->inputs[3], source);
        int32_t start = source < 0 ? 0 : mf_const_i32(&op->inputs[1], source);
        int32_t stop = source < 0 ? 1 : mf_const_i32(&op->inputs[2], source);
        const int masked_begin = source < 0 || (begin_mask >> source & 1u) != 0;
        const int masked_end = source < 0 || (end_mask >> source & 1u) != 0;
        const int shrink = source >= 0 && (shrink_mask >> source & 1u) != 0;
        if (start < 0) {
            start += size;
        }
        start = step > 0 ? mf_slice_clamp(start, 0, size) : mf_slice_clamp(start, -1, size - 1);
        if (masked_begin) {
            start = step > 0 ? 0 : size - 1;
        }
        if (shrink) {
            stop = start >= size ? start : start + 1;
        } else {
            if (stop < 0) {
                stop += size;
            }
            stop = step > 0 ? mf_slice_clamp(stop, 0, size) : mf_slice_clamp(stop, -1, size - 1);
            if (masked_end) {
                stop = step > 0 ? size : -1;
            }
        }
        plan->start[axis] = start;
        plan->stop[axis] = stop;
        plan->stride[axis] = step;
        if (step > 0) {
            plan->count[axis] = start < stop ? (int32_t)(((int64_t)stop - start + step - 1) / step) : 0;
        } else {
            plan->count[axis] = start > stop ? (int32_t)(((int64_t)start - stop - step - 1) / -(int64_t)step) : 0;
        }
        plan->in_stride[axis] = stride;
        stride *= size;
    }
}

mf_status mf_strided_slice_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *out = &op->outputs[0];
    const uint32_t shrink_mask = (uint32_t)mf_option_i32(&op->options, 4, 0);
    mf_slice_plan plan;
    mf_status status = MF_OK;
    int32_t out_axis = 0;
    int32_t i;
    *scratch_bytes = 0;
    if (op->input_count != 4 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (in->type != MF_INT8 || out->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (in->rank < 1 || in->rank > MF_SLICE_DIMS || !mf_dims_positive(in) || mf_option_i32(&op->options, 2, 0) != 0 ||
        mf_option_i32(&op->options, 3, 0) != 0 || mf_option_u8(&op->options, 5, 0) != 0) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    for (i = 1; i <= 3 && status == MF_OK; ++i) {
        status = mf_check_const_i32(&op->inputs[i], in->rank);
    }
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < in->rank; ++i) {
        if (mf_const_i32(&op->inputs[3], i) == 0) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
    }
    mf_slice_build(op, &plan);
    for (i = 0; i < in->rank; ++i) {
        const int32_t count = plan.count[MF_SLICE_DIMS - in->rank + i];
        if ((shrink_mask >> i & 1u) != 0) {
            continue;
        }
        if (out_axis >= out->rank || out->dims[out_axis] != count) {
            return MF_ERR_BAD_MODEL;
        }
        ++out_axis;
    }
    return out_axis == out->rank ? MF_OK : MF_ERR_BAD_MODEL;
}

mf_status mf_strided_slice_eval(const mf_op *op)
{
    const int8_t *src = (const int8_t *)op->inputs[0].data;
    int8_t *dst = (int8_t *)op->outputs[0].data;
    int32_t index[MF_SLICE_DIMS] = {0};
    int32_t total = 1;
    int64_t offset = 0; /* a step of stride * in_stride may exceed int32; visited offsets do not */
    int32_t axis;
    int32_t i;
    mf_slice_plan plan;
    mf_slice_build(op, &plan);
    for (axis = 0; axis < MF_SLICE_DIMS; ++axis) {
        total *= plan.count[axis];
        offset += (int64_t)plan.start[axis] * plan.in_stride[axis];
    }
    for (i = 0; i < total; ++i) {
        dst[i] = src[offset];
        for (axis = MF_SLICE_DIMS - 1; axis >= 0; --axis) {
            const int64_t step = (int64_t)plan.stride[axis] * plan.in_stride[axis];
            offset += step;
            if (++index[axis] < plan.count[axis]) {
                break;
            }
            offset -= step * plan.count[axis];
            index[axis] = 0;
        }
    }
    return MF_OK;
}
