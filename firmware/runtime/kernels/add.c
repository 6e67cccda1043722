/*
 * ADD, int8, with fused activation and broadcasting: TFLM's reference
 * (add_common.cc + integer_ops/add.h). Both inputs are lifted to a common
 * scale with 20 bits of headroom (left shift 20), added, then rescaled to the
 * output. Prepare computes the multipliers once, in integers (no soft-float),
 * into the op-data record; eval only reads it.
 */
#include "mf_broadcast.h"

typedef struct mf_add_params {
    int32_t input1_offset, input2_offset, output_offset;
    int32_t input1_multiplier, input2_multiplier, output_multiplier;
    int input1_shift, input2_shift, output_shift;
    int32_t act_min, act_max;
} mf_add_params;

enum { MF_ADD_LEFT_SHIFT = 20 };

/* QuantizeMultiplierSmallerThanOneExp of numerator / denominator (positive floats,
 * the quotient formed as TFLM's double one): TFLM aborts outside (0, 1); we refuse the model. */
static mf_status mf_add_multiplier_below_one(float numerator, float denominator, int32_t *multiplier, int *shift)
{
    mf_requant q;
    if (!(numerator > 0.0f && numerator < denominator)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    q = mf_requant_of_scales(numerator, 1.0f, denominator);
    *multiplier = q.multiplier;
    *shift = -q.right;
    return q.left == 0 ? MF_OK : MF_ERR_UNSUPPORTED_PARAM; /* the quotient rounded up to 1.0 */
}

static mf_status mf_add_compute_params(const mf_op *op, mf_add_params *p)
{
    const mf_tensor *in1 = &op->inputs[0];
    const mf_tensor *in2 = &op->inputs[1];
    const mf_tensor *out = &op->outputs[0];
    /* Doubling and scaling by 2^20 are exact in float, as in TFLM's doubles. */
    const float twice_max_input_scale = 2.0f * (in1->scale > in2->scale ? in1->scale : in2->scale);
    mf_status status;
    if (!mf_int8_quantization_ok(in1) || !mf_int8_quantization_ok(in2) || !mf_int8_quantization_ok(out)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    p->input1_offset = -in1->zero_point;
    p->input2_offset = -in2->zero_point;
    p->output_offset = out->zero_point;
    status = mf_add_multiplier_below_one(in1->scale, twice_max_input_scale, &p->input1_multiplier, &p->input1_shift);
    if (status == MF_OK) {
        status = mf_add_multiplier_below_one(in2->scale, twice_max_input_scale, &p->input2_multiplier, &p->input2_shift);
    }
    if (status == MF_OK) {
        status = mf_add_multiplier_below_one(twice_max_input_scale, (float)(1 << MF_ADD_LEFT_SHIFT) * out->scale,
                                             &p->output_multiplier, &p->output_shift);
    }
    if (status == MF_OK) {
        status = mf_activation_range_int8(mf_option_u8(&op->options, 0, MF_ACT_NONE), out, &p->act_min, &p->act_max);
    }
    return status;
}

mf_status mf_add_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_add_params params;
    mf_add_params *record;
    mf_broadcast bc;
    mf_status status;
    *scratch_bytes = 0;
    if (op->input_count != 2 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (op->inputs[0].type != MF_INT8 || op->inputs[1].type != MF_INT8 || op->outputs[0].type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (mf_option_u8(&op->options, 1, 0) != 0) { /* pot_scale_int16: an int16-only variant */
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    /* Without broadcasting input 0, element i is read just before out[i] is written: in place is safe. */
    if (status == MF_OK && op->overlap != NULL && mf_tensor_flat_size(&op->inputs[0]) == mf_tensor_flat_size(&op->outputs[0])) {
        op->overlap->allowed = 1;
        op->overlap->gap = 0;
    }
    if (status == MF_OK) {
        status = mf_add_compute_params(op, &params);
    }
    if (status != MF_OK) {
        return status;
    }
    record = (mf_add_params *)mf_op_data(op, sizeof params);
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    *record = params;
    return MF_OK;
}

mf_status mf_add_eval(const mf_op *op)
{
    const int8_t *in1 = (const int8_t *)op->inputs[0].data;
    const int8_t *in2 = (const int8_t *)op->inputs[1].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    int32_t index[MF_MAX_DIMS] = {0};
    int32_t offset1 = 0;
    int32_t offset2 = 0;
    int32_t i;
    const mf_add_params *d = (const mf_add_params *)op->data;
    const mf_add_params p = *d;
    mf_broadcast bc;
    const mf_status status = mf_broadcast_init(&op->inputs[0], &op->inputs[1], &op->outputs[0], &bc);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < bc.count; ++i) {
        const int32_t shifted1 = mf_wrap_shl(p.input1_offset + in1[offset1], MF_ADD_LEFT_SHIFT);
        const int32_t shifted2 = mf_wrap_shl(p.input2_offset + in2[offset2], MF_ADD_LEFT_SHIFT);
        const int32_t scaled1 = mf_mul_by_quantized_multiplier_smaller_than_one(shifted1, p.input1_multiplier, p.input1_shift);
        const int32_t scaled2 = mf_mul_by_quantized_multiplier_smaller_than_one(shifted2, p.input2_multiplier, p.input2_shift);
        const int32_t raw = mf_wrap_add(mf_mul_by_quantized_multiplier_smaller_than_one(mf_wrap_add(scaled1, scaled2),
                                                                                        p.output_multiplier, p.output_shift),
                                        p.output_offset);
        out[i] = (int8_t)mf_clamp_i32(raw, p.act_min, p.act_max);
        mf_broadcast_next(&bc, index, &offset1, &offset2);
    }
    return MF_OK;
}
