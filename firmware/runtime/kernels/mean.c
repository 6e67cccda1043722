/*
 * MEAN, int8: TFLM's QuantizedMeanOrSum. The zero-point-corrected int32 sum
 * is requantized with the output multiplier folded with 1/count. The TFLM we
 * match takes this path even when input and output share scale and zero point
 * (older TFLM divided the raw sum, truncating, in that case; the tests pin it).
 * Sums are formed output by output, so no scratch buffer is needed, in
 * straight runs along the last of the reduced axes (adjacent ones merged:
 * NHWC's global average pooling is one run per channel). Prepare keeps the
 * axis plan and the requantization in the op-data record (in integers: no
 * soft-float); eval only reads it.
 */
#include "mf_ops_common.h"

/* Adjacent kept axes, and adjacent reduced ones, are merged (row-major: the outer one's stride is the inner
 * one's times its size); there is always a reduced axis (of size 1 when none is reduced). */
typedef struct mf_mean_plan {
    int32_t kept_dims[MF_MAX_DIMS];
    int32_t kept_strides[MF_MAX_DIMS];
    int32_t kept_count;
    int32_t reduced_dims[MF_MAX_DIMS];
    int32_t reduced_strides[MF_MAX_DIMS];
    int32_t reduced_count;
    int32_t outputs;  /* product of kept dims */
    int32_t elements; /* product of reduced dims: values averaged per output */
} mf_mean_plan;

/* The op-data record. */
typedef struct mf_mean_data {
    mf_mean_plan plan;
    int32_t multiplier; /* in_scale / out_scale / elements, TFLM's way */
    int32_t shift;
} mf_mean_data;

/* Splits the input axes into kept and reduced ones; the axis tensor is checked. */
static mf_status mf_mean_plan_build(const mf_op *op, mf_mean_plan *plan)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *axes = &op->inputs[1];
    const int32_t axis_count = mf_tensor_flat_size(axes);
    int32_t strides[MF_MAX_DIMS];
    uint32_t reduced = 0;
    int32_t axis;
    int32_t i;
    for (i = 0; i < axis_count; ++i) {
        axis = mf_const_i32(axes, i);
        if (axis < 0) {
            axis += in->rank;
        }
        if (axis < 0 || axis >= in->rank) {
            return MF_ERR_BAD_MODEL;
        }
        reduced |= 1u << axis;
    }
    mf_row_major_strides(in, strides);
    plan->kept_count = 0;
    plan->reduced_count = 0;
    plan->outputs = 1;
    plan->elements = 1;
    for (axis = 0; axis < in->rank; ++axis) {
        const int is_reduced = (reduced >> axis & 1u) != 0;
        const int merges = axis > 0 && ((reduced >> (axis - 1) & 1u) != 0) == is_reduced;
        int32_t *dims = is_reduced ? plan->reduced_dims : plan->kept_dims;
        int32_t *axis_strides = is_reduced ? plan->reduced_strides : plan->kept_strides;
        int32_t *count = is_reduced ? &plan->reduced_count : &plan->kept_count;
        if (merges) {
            dims[*count - 1] *= in->dims[axis];
            axis_strides[*count - 1] = strides[axis];
        } else {
            dims[*count] = in->dims[axis];
            axis_strides[(*count)++] = strides[axis];
        }
        *(is_reduced ? &plan->elements : &plan->outputs) *= in->dims[axis];
    }
    if (plan->reduced_count == 0) {
        plan->reduced_dims[0] = 1;
        plan->reduced_strides[0] = 1;
        plan->reduced_count = 1;
    }
    return MF_OK;
}

/* in_scale / out_scale / elements as a multiplier and shift: TFLM folds
 * 1/elements in by shifting floor(log2(elements)) bits (capped at 32 and at
 * 31 + shift) and dividing, truncating. elements > 0. */
static mf_status mf_mean_requantization(const mf_op *op, int32_t elements, int32_t *multiplier, int32_t *shift)
{
    int bits = 31 - mf_count_leading_zeros((uint32_t)elements);
    const mf_requant ratio = mf_requant_of_scales(op->inputs[0].scale, 1.0f, op->outputs[0].scale);
    *multiplier = ratio.multiplier;
    *shift = ratio.left - ratio.right;
    bits = bits < 31 + *shift ? bits : 31 + *shift;
    if (bits < 0 || *shift - bits > 31) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    *multiplier = (int32_t)(((int64_t)*multiplier << bits) / elements);
    *shift -= bits;
    return MF_OK;
}

mf_status mf_mean_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *out = &op->outputs[0];
    mf_mean_data d = {0};
    mf_mean_data *record;
    mf_status status;
    *scratch_bytes = 0;
    if (op->input_count != 2 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (in->type != MF_INT8 || out->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (!mf_int8_quantization_ok(in) || !mf_int8_quantization_ok(out) || !mf_dims_positive(in)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_check_const_i32(&op->inputs[1], mf_tensor_flat_size(&op->inputs[1]));
    if (status == MF_OK) {
        status = mf_mean_plan_build(op, &d.plan);
    }
    if (status == MF_OK && d.plan.elements > 0) {
        status = mf_mean_requantization(op, d.plan.elements, &d.multiplier, &d.shift);
    }
    if (status != MF_OK) {
        return status;
    }
    if (d.plan.outputs != mf_tensor_flat_size(out)) {
        return MF_ERR_BAD_MODEL;
    }
    record = (mf_mean_data *)mf_op_data(op, sizeof d);
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    *record = d;
    return MF_OK;
}

/* Sum (modulo 2^32, like TFLM's int32) of the raw int8 values reduced into output o: runs along the last
 * reduced axis, the outer ones counted by index. */
static uint32_t mf_mean_sum(const int8_t *src, const mf_mean_plan *plan, int32_t o)
{
    const int32_t last = plan->reduced_count - 1;
    const int32_t run = plan->reduced_dims[last], stride = plan->reduced_strides[last];
    int32_t index[MF_MAX_DIMS] = {0};
    uint32_t sum = 0;
    int32_t runs, axis, e;
    for (axis = plan->kept_count - 1; axis >= 0; --axis) {
        src += (o % plan->kept_dims[axis]) * plan->kept_strides[axis];
        o /= plan->kept_dims[axis];
    }
    for (runs = plan->elements / run; runs > 0; --runs) {
        const int8_t *p = src;
        for (e = run; e > 0; --e, p += stride) {
            sum += (uint32_t)*p;
        }
        for (axis = last - 1; axis >= 0; --axis) {
            src += plan->reduced_strides[axis];
            if (++index[axis] < plan->reduced_dims[axis]) {
                break;
            }
            src -= plan->reduced_strides[axis] * plan->reduced_dims[axis];
            index[axis] = 0;
        }
    }
    return sum;
}

mf_status mf_mean_eval(const mf_op *op)
{
    const mf_tensor *in = &op->inputs[0];
    const mf_tensor *out = &op->outputs[0];
    const int8_t *src = (const int8_t *)in->data;
    int8_t *dst = (int8_t *)out->data;
    const mf_mean_data *d = (const mf_mean_data *)op->data;
    const uint32_t zero_sum = (uint32_t)((int64_t)in->zero_point * d->plan.elements);
    int32_t o;
    if (d->plan.elements == 0) {
        memset(dst, 0, (size_t)d->plan.outputs);
        return MF_OK;
    }
    for (o = 0; o < d->plan.outputs; ++o) {
        const int32_t shifted_sum = (int32_t)(mf_mean_sum(src, &d->plan, o) - zero_sum);
        const int32_t value = mf_wrap_add(mf_mul_by_quantized_multiplier(shifted_sum, d->multiplier, (int)d->shift), out->zero_point);
        dst[o] = (int8_t)mf_clamp_i32(value, INT8_MIN, INT8_MAX);
    }
    return MF_OK;
}
