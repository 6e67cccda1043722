/* FULLY_CONNECTED for cores with the DSP extension, bit for bit the portable
 * kernel's output (it replaces kernels/fully_connected.c in such builds and
 * shares its prologue).
 *
 * Two weight rows at a time against the input vector: SXTAB16 widens four
 * int8 and adds the zero-point offset in one step per pair of lanes, SMLAD
 * does two MACs; each input word is unpacked once for both rows. No scratch:
 * the requantization is in the op-data record. */
#include "dsp_affine.h"

#define mf_fully_connected_prepare mfd_fully_connected_prepare_reference
#define mf_fully_connected_eval mfd_fully_connected_eval_reference
#include "../fully_connected.c"
#undef mf_fully_connected_prepare
#undef mf_fully_connected_eval

enum { FC_PORTABLE = 0, FC_PAIRS = 1 };

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
        head.variant = FC_PAIRS;
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

/* Units in pairs (each input word unpacked once for two rows), the requantization read in place. */
mf_status mf_fully_connected_eval(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    if (!mf_affine_reads_input(d, 1)) {
        return mf_fully_connected_eval_sparse(op); /* a sparse filter in the record */
    }
    if (d->variant == FC_PORTABLE) {
        return mfd_fully_connected_eval_reference(op);
    }
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
