/* ADD and MUL on float32, with fused activation and broadcasting: TFLM
 * reference_ops::Add / Mul (and their BroadcastAdd6DSlow / BroadcastMul6DSlow):
 * one rounded sum or product per output element, then clamped. */
#include "mf_broadcast.h"
#include "mf_float.h"

enum { OPT_ACTIVATION = 0 }; /* AddOptions and MulOptions field 0 */

static mf_status binary_float_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_float_range range;
    mf_broadcast bc;
    mf_status status = mf_float_check(op, 2, 2);
    *scratch_bytes = 0;
    if (status == MF_OK) {
        status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    }
    if (status == MF_OK) {
        status = mf_activation_range_float(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), &range);
    }
    if (status != MF_OK) {
        return status;
    }
    /* Without broadcasting input 0, element i is read just before out[i] is written: in place is safe. */
    if (op->overlap != NULL && mf_tensor_flat_size(&op->inputs[0]) == mf_tensor_flat_size(&op->outputs[0])) {
        op->overlap->allowed = 1;
        op->overlap->gap = 0;
    }
    return mf_float_store(op, &range, sizeof range);
}

static mf_status binary_float_eval(const mf_op *op, int multiply)
{
    const float *in1 = (const float *)op->inputs[0].data;
    const float *in2 = (const float *)op->inputs[1].data;
    float *out = (float *)op->outputs[0].data;
    const mf_float_range range = *(const mf_float_range *)op->data;
    int32_t index[MF_MAX_DIMS] = {0};
    int32_t offset1 = 0;
    int32_t offset2 = 0;
    int32_t i;
    mf_broadcast bc;
    const mf_status status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < bc.count; ++i) {
        const float value = multiply ? in1[offset1] * in2[offset2] : in1[offset1] + in2[offset2];
        out[i] = mf_clamp_float(value, range.act_min, range.act_max);
        mf_broadcast_next(&bc, index, &offset1, &offset2);
    }
    return MF_OK;
}

mf_status mf_add_float_prepare(const mf_op *op, size_t *scratch_bytes) { return binary_float_prepare(op, scratch_bytes); }

mf_status mf_add_float_eval(const mf_op *op) { return binary_float_eval(op, 0); }

mf_status mf_mul_float_prepare(const mf_op *op, size_t *scratch_bytes) { return binary_float_prepare(op, scratch_bytes); }

mf_status mf_mul_float_eval(const mf_op *op) { return binary_float_eval(op, 1); }
