/* FULLY_CONNECTED for cores with the DSP extension, bit for bit the portable
 * kernel's output (it replaces kernels/fully_connected.c in such builds and
 * shares its prologue).
 *
 * Two weight rows at a time against the input vector: SXTAB16 widens four
 * int8 and adds the zero-point offset in one step per pair of lanes, SMLAD
 * does two MACs; each input word is unpacked once for both rows. No scratch:
 * the requantization is in the op-data record. */
#include "dsp_affine.h"

#define MFD_FULLY_CONNECTED /* this file has its own folded loop */
#define mf_fully_connected_prepare mfd_fully_connected_prepare_reference
#define mf_fully_connected_eval_dense mfd_fully_connected_eval_dense_reference
#include "../fully_connected.c"
#undef mf_fully_connected_prepare
#undef mf_fully_connected_eval_dense


mf_status mf_fully_connected_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_affine_data head;
    const mf_status status = mf_affine_check(op, MF_AFFINE_FULLY_CONNECTED, &head);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (mfd_int8_offset_ok(op->inputs[0].zero_point) && mfd_int8_offset_ok(op->inputs[1].zero_point) &&
        head.weights == MF_WEIGHTS_INT8) { /* INT4 weights: the portable INT4 loop */
        head.variant = MFD_FC_PAIRS;
    }
    *scratch_bytes = mf_affine_plan_table(op, MF_AFFINE_FULLY_CONNECTED, &head, 0);
    return mf_affine_store(op, MF_AFFINE_FULLY_CONNECTED, &head);
}

/* The dot products of two weight rows (row1 may equal row0) with x, offsets added: *acc0, *acc1 start at
 * the biases. Four int8 per word; SXTAB16 adds the offsets while widening. */
static inline void mfd_fc_rows(const int8_t *row0, const int8_t *row1, const int8_t *x, int32_t depth, uint32_t w_offsets,
                               uint32_t x_offsets, int32_t *acc0, int32_t *acc1)
{
    const int8_t *end = x + (depth & ~3);
    int32_t a0 = *acc0, a1 = *acc1;
    for (; x != end; x += 4, row0 += 4, row1 += 4) {
        const uint32_t xw = mfd_read32(x), w0 = mfd_read32(row0), w1 = mfd_read32(row1);
        const uint32_t x_even = mfd_sxtab16(x_offsets, xw), x_odd = mfd_sxtab16_ror8(x_offsets, xw);
        a0 = mfd_smlad(mfd_sxtab16(w_offsets, w0), x_even, a0);
        a0 = mfd_smlad(mfd_sxtab16_ror8(w_offsets, w0), x_odd, a0);
        a1 = mfd_smlad(mfd_sxtab16(w_offsets, w1), x_even, a1);
        a1 = mfd_smlad(mfd_sxtab16_ror8(w_offsets, w1), x_odd, a1);
    }
    for (depth &= 3; depth > 0; --depth, ++x, ++row0, ++row1) {
        const int32_t value = *x + mfd_lane_value(x_offsets);
        a0 = mf_wrap_add(a0, (*row0 + mfd_lane_value(w_offsets)) * value);
        a1 = mf_wrap_add(a1, (*row1 + mfd_lane_value(w_offsets)) * value);
    }
    *acc0 = a0;
    *acc1 = a1;
}

/* An output side with one requantization for every unit (per-tensor weights),
 * its right shift (2 or more, so no left shift) resolved once. */
typedef struct mfd_fc_out {
    int32_t multiplier;
    uint32_t round; /* 1 << (right - 2) */
    int32_t shift;  /* right - 1 */
    int32_t zero_point, act_min, act_max;
} mfd_fc_out;

/* mfd_output with the requantization of `o`. */
static inline int8_t mfd_fc_output(int32_t acc, const mfd_fc_out *o)
{
    const int32_t value = mfd_smlal_high(acc, o->multiplier, o->round + (uint32_t)(acc >> 31),
                                         ((uint32_t)acc & 0x80000000u) | 0x40000000u) >> o->shift;
    return (int8_t)mf_clamp_i32(mf_wrap_add(value, o->zero_point), o->act_min, o->act_max);
}

/* One input vector times `units` rows, one requantization for all. */
static void mfd_fc_folded_one_scale(const int8_t *x, const int8_t *row, const int32_t *bias, int8_t *out, int32_t units,
                                    int32_t depth, const mfd_fc_out *o)
{
    for (; units >= 2; units -= 2, row += 2 * depth, bias += 2, out += 2) {
        int32_t acc0 = bias[0], acc1 = bias[1];
        mfd_fc_rows(row, row + depth, x, depth, 0u, 0u, &acc0, &acc1); /* no offsets: folded */
        out[0] = mfd_fc_output(acc0, o);
        out[1] = mfd_fc_output(acc1, o);
    }
    if (units == 1) {
        int32_t acc0 = bias[0], acc1 = 0;
        mfd_fc_rows(row, row, x, depth, 0u, 0u, &acc0, &acc1);
        out[0] = mfd_fc_output(acc0, o);
    }
}

/* One input vector times `units` rows, requantization q[u * step] for unit u. */
static void mfd_fc_folded_per_channel(const int8_t *x, const int8_t *row, const int32_t *bias, int8_t *out, int32_t units,
                                      int32_t depth, const mfd_requant *q, int32_t step, const mfd_out *o)
{
    for (; units >= 2; units -= 2, row += 2 * depth, bias += 2, out += 2, q += 2 * step) {
        int32_t acc0 = bias[0], acc1 = bias[1];
        mfd_fc_rows(row, row + depth, x, depth, 0u, 0u, &acc0, &acc1); /* no offsets: folded */
        out[0] = mfd_output(acc0, q, o->zero_point, o->act_min, o->act_max);
        out[1] = mfd_output(acc1, q + step, o->zero_point, o->act_min, o->act_max);
    }
    if (units == 1) {
        int32_t acc0 = bias[0], acc1 = 0;
        mfd_fc_rows(row, row, x, depth, 0u, 0u, &acc0, &acc1);
        out[0] = mfd_output(acc0, q, o->zero_point, o->act_min, o->act_max);
    }
}

/* Dense weights, folded biases (no offset per MAC): units in pairs, each
 * input word sign-extended once for two rows; a per-tensor requantization
 * is resolved once (mfd_fc_out), per-channel ones (or shifts under 2) per unit. */
mf_status mf_fully_connected_eval_folded(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mfd_requant *requant = (const mfd_requant *)(const void *)mf_affine_record_table(d);
    const int32_t *folded = mf_affine_folded(d);
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    const int8_t *w = (const int8_t *)op->inputs[1].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = op->inputs[1].dims[0], depth = op->inputs[1].dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    int32_t b;
    if (d->channel_step == 0 && requant->right >= 2) {
        mfd_fc_out one;
        one.multiplier = requant->multiplier;
        one.round = 1u << (requant->right - 2);
        one.shift = requant->right - 1;
        one.zero_point = o.zero_point;
        one.act_min = o.act_min;
        one.act_max = o.act_max;
        for (b = 0; b < batches; ++b, in += depth, out += units) {
            mfd_fc_folded_one_scale(in, w, folded, out, units, depth, &one);
        }
        return MF_OK;
    }
    for (b = 0; b < batches; ++b, in += depth, out += units) {
        mfd_fc_folded_per_channel(in, w, folded, out, units, depth, requant, d->channel_step, &o);
    }
    return MF_OK;
}

/* Units in pairs (each input word unpacked once for two rows), the requantization read in place
 * (record variant MFD_FC_PAIRS). */
mf_status mfd_fully_connected_eval_pairs(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    {
        const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
        const int8_t *in = (const int8_t *)op->inputs[0].data;
        const int8_t *w = (const int8_t *)op->inputs[1].data;
        int8_t *out = (int8_t *)op->outputs[0].data;
        const int32_t units = op->inputs[1].dims[0], depth = op->inputs[1].dims[1];
        const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
        const mfd_requant *requant = dsp_requant_table(op, d);
        const int32_t step = d->channel_step;
        const uint32_t x_offsets = mfd_dup16(d->input_offset), w_offsets = mfd_dup16(d->filter_offset);
        const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
        int32_t b;
        for (b = 0; b < batches; ++b, in += depth, out += units) {
            const int8_t *row = w;
            const mfd_requant *q = requant;
            int32_t u;
            for (u = 0; u < units; u += 2, row += 2 * (size_t)depth, q += 2 * step) {
                const int32_t pair = u + 1 < units; /* 0: the last unit alone (its row read twice) */
                int32_t acc0 = bias != NULL ? bias[u] : 0, acc1 = bias != NULL && pair ? bias[u + 1] : 0;
                mfd_fc_rows(row, row + (pair ? depth : 0), in, depth, w_offsets, x_offsets, &acc0, &acc1);
                out[u] = mfd_output_of(acc0, q, o);
                if (pair) {
                    out[u + 1] = mfd_output_of(acc1, q + step, o);
                }
            }
        }
    }
    return MF_OK;
}

/* The loop prepare chose (record variant); prepared firmware calls it directly (mf_eval_variants.h). */
mf_status mf_fully_connected_eval_dense(const mf_op *op)
{
    return ((const mf_affine_data *)op->data)->variant == MFD_FC_PAIRS ? mfd_fully_connected_eval_pairs(op)
                                                                        : mfd_fully_connected_eval_dense_reference(op);
}
