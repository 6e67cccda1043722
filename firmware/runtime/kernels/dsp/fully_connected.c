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

/* acc[r] += (row r + filter offset) . (x + input offset), for two rows. */
static void mfd_fc_rows(const int8_t *row0, const int8_t *row1, const int8_t *x, int32_t depth, int32_t filter_offset,
                        int32_t input_offset, int32_t acc[2])
{
    const uint32_t x_offsets = mfd_dup16(input_offset), w_offsets = mfd_dup16(filter_offset);
    const int32_t whole = depth & ~3;
    int32_t a0 = acc[0], a1 = acc[1];
    int32_t d;
    for (d = 0; d < whole; d += 4) {
        const uint32_t xw = mfd_read32(x + d), w0 = mfd_read32(row0 + d), w1 = mfd_read32(row1 + d);
        const uint32_t x_even = mfd_sxtab16(x_offsets, xw), x_odd = mfd_sxtab16_ror8(x_offsets, xw);
        a0 = mfd_smlad(mfd_sxtab16(w_offsets, w0), x_even, a0);
        a0 = mfd_smlad(mfd_sxtab16_ror8(w_offsets, w0), x_odd, a0);
        a1 = mfd_smlad(mfd_sxtab16(w_offsets, w1), x_even, a1);
        a1 = mfd_smlad(mfd_sxtab16_ror8(w_offsets, w1), x_odd, a1);
    }
    for (; d < depth; ++d) {
        a0 = mf_wrap_add(a0, (row0[d] + filter_offset) * (x[d] + input_offset));
        a1 = mf_wrap_add(a1, (row1[d] + filter_offset) * (x[d] + input_offset));
    }
    acc[0] = a0;
    acc[1] = a1;
}

mf_status mf_fully_connected_eval(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    if (!mf_affine_reads_input(d, 1)) {
        return mf_fully_connected_eval_sparse(op); /* a sparse filter in the record */
    }
    const mf_tensor *filter = &op->inputs[1];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = filter->dims[0];
    const int32_t depth = filter->dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    const mf_requant *requant;
    int32_t step;
    int32_t u;
    if (d->variant == FC_PORTABLE) {
        return mfd_fully_connected_eval_reference(op);
    }
    requant = mf_affine_table(op, d);
    step = d->channel_step;
    for (u = 0; u < units; u += 2) {
        const int32_t u1 = u + 1 < units ? u + 1 : u;
        const mfd_requant requant0 = dsp_requant(requant[u * step]), requant1 = dsp_requant(requant[u1 * step]);
        int32_t b;
        for (b = 0; b < batches; ++b) {
            int32_t acc[2];
            acc[0] = bias != NULL ? bias[u] : 0;
            acc[1] = bias != NULL ? bias[u1] : 0;
            mfd_fc_rows(w + (size_t)u * depth, w + (size_t)u1 * depth, in + (size_t)b * depth, depth, d->filter_offset,
                        d->input_offset, acc);
            out[(size_t)b * units + u] = mfd_output(acc[0], &requant0, d->output_zero_point, d->act_min, d->act_max);
            out[(size_t)b * units + u1] = mfd_output(acc[1], &requant1, d->output_zero_point, d->act_min, d->act_max);
        }
    }
    return MF_OK;
}
