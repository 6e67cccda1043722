/*
 * NumPy-style broadcasting for the binary elementwise kernels (ADD, MUL), as
 * TFLM's BroadcastAdd6DSlow / BroadcastMul6DSlow do it: shapes are right-aligned
 * and extended to MF_MAX_DIMS, a size-1 input dimension is repeated (stride 0),
 * and the output is walked in row-major order.
 */
#ifndef MF_BROADCAST_H
#define MF_BROADCAST_H

#include "mf_ops_common.h"

typedef struct mf_broadcast {
    int32_t dims[MF_MAX_DIMS];     /* output shape, left-padded with 1s */
    int32_t stride_a[MF_MAX_DIMS]; /* element stride of input a per output axis, 0 when repeated */
    int32_t stride_b[MF_MAX_DIMS];
    int32_t count;                 /* output elements */
} mf_broadcast;

/* Dimension `axis` of `t` after right-aligning it to MF_MAX_DIMS. */
static inline int32_t mf_broadcast_dim(const mf_tensor *t, int axis)
{
    const int offset = MF_MAX_DIMS - (int)t->rank;
    return axis < offset ? 1 : t->dims[axis - offset];
}

static inline void mf_broadcast_strides(const mf_tensor *t, const int32_t *out_dims, int32_t *strides)
{
    int32_t stride = 1;
    int axis;
    for (axis = MF_MAX_DIMS - 1; axis >= 0; --axis) {
        const int32_t dim = mf_broadcast_dim(t, axis);
        strides[axis] = (dim == 1 && out_dims[axis] != 1) ? 0 : stride;
        stride *= dim;
    }
}

/* Checks that a and b broadcast to exactly `out`'s shape and fills the walk. */
static inline mf_status mf_broadcast_init(const mf_tensor *a, const mf_tensor *b, const mf_tensor *out, mf_broadcast *bc)
{
    int axis;
    if (a->rank > out->rank || b->rank > out->rank || out->rank > MF_MAX_DIMS) {
        return MF_ERR_BAD_MODEL;
    }
    if (!mf_dims_positive(a) || !mf_dims_positive(b)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    bc->count = 1;
    for (axis = 0; axis < MF_MAX_DIMS; ++axis) {
        const int32_t da = mf_broadcast_dim(a, axis);
        const int32_t db = mf_broadcast_dim(b, axis);
        const int32_t dout = mf_broadcast_dim(out, axis);
        if ((da != dout && da != 1) || (db != dout && db != 1) || (da != dout && db != dout)) {
            return MF_ERR_BAD_MODEL;
        }
        bc->dims[axis] = dout;
        bc->count *= dout;
    }
    mf_broadcast_strides(a, bc->dims, bc->stride_a);
    mf_broadcast_strides(b, bc->dims, bc->stride_b);
    return MF_OK;
}

/* Advances the output index by one element and the two input offsets with it. */
static inline void mf_broadcast_next(const mf_broadcast *bc, int32_t *index, int32_t *offset_a, int32_t *offset_b)
{
    int axis;
    for (axis = MF_MAX_DIMS - 1; axis >= 0; --axis) {
        *offset_a += bc->stride_a[axis];
        *offset_b += bc->stride_b[axis];
        if (++index[axis] < bc->dims[axis]) {
            return;
        }
        *offset_a -= bc->stride_a[axis] * bc->dims[axis];
        *offset_b -= bc->stride_b[axis] * bc->dims[axis];
        index[axis] = 0;
    }
}

#endif /* MF_BROADCAST_H */
