/* Broadcast set-up shared by ADD and MUL (see mf_broadcast.h), compiled once. */
#include "mf_broadcast.h"

/* Dimension `axis` of `t` after right-aligning it to MF_MAX_DIMS. */
static int32_t mf_broadcast_dim(const mf_tensor *t, int axis)
{
    const int offset = MF_MAX_DIMS - (int)t->rank;
    return axis < offset ? 1 : t->dims[axis - offset];
}

static void mf_broadcast_strides(const mf_tensor *t, const int32_t *out_dims, int32_t *strides)
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
mf_status mf_broadcast_init(const mf_tensor *a, const mf_tensor *b, const mf_tensor *out, mf_broadcast *bc)
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
