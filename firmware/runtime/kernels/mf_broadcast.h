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

/* Checks that a and b broadcast to exactly `out`'s shape and fills the walk. */
mf_status mf_broadcast_init(const mf_tensor *a, const mf_tensor *b, const mf_tensor *out, mf_broadcast *bc);

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
