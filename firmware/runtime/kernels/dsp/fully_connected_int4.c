/* FULLY_CONNECTED with INT4 weights on cores with the DSP extension (it
 * replaces kernels/fully_connected_int4.c in such builds), bit for bit the
 * portable INT4 loop.
 *
 * Two weight rows at a time against the input vector, eight values a step:
 * the inputs widened (input offset added) and paired as the lanes a weight
 * word unpacks into (mfd_int4.h), once for both rows; 16-times sums shifted
 * back exactly. Rows that do not start on a byte (odd depth), a filter zero
 * point, or more than MFD_INT4_MAX_VALUES values take the portable loop. */
#include "dsp_affine.h"
#include "mfd_int4.h"
#include "../mf_int4.h"

#define mf_fully_connected_int4_eval mfd_fully_connected_int4_eval_reference
#include "../fully_connected_int4.c"
#undef mf_fully_connected_int4_eval

/* acc[r] = row r . (x + input offset) for two packed rows of `depth` values (byte aligned). */
static void fc_int4_rows(const uint8_t *row0, const uint8_t *row1, const int8_t *x, int32_t depth, int32_t input_offset,
                         int32_t acc[2])
{
    const uint32_t offsets = mfd_dup16(input_offset);
    const int32_t whole = depth & ~7;
    int32_t a0 = 0, a1 = 0, t0 = 0, t1 = 0;
    int32_t k;
    for (k = 0; k < whole; k += 8, row0 += 4, row1 += 4) {
        const uint32_t first = mfd_read32(x + k), second = mfd_read32(x + k + 4);
        const uint32_t x02 = mfd_sxtab16(offsets, first), x13 = mfd_sxtab16_ror8(offsets, first);
        const uint32_t x46 = mfd_sxtab16(offsets, second), x57 = mfd_sxtab16_ror8(offsets, second);
        uint32_t pairs[4];
        pairs[0] = (x02 & 0xFFFFu) | x46 << 16; /* (x0, x4) */
        pairs[1] = x02 >> 16 | (x46 & 0xFFFF0000u); /* (x2, x6) */
        pairs[2] = (x13 & 0xFFFFu) | x57 << 16; /* (x1, x5) */
        pairs[3] = x13 >> 16 | (x57 & 0xFFFF0000u); /* (x3, x7) */
        a0 = mfd_int4_dot8(mfd_int4_unpack(mfd_read32(row0)), pairs, a0);
        a1 = mfd_int4_dot8(mfd_int4_unpack(mfd_read32(row1)), pairs, a1);
    }
    for (; k < depth; ++k) {
        const int32_t value = x[k] + input_offset;
        t0 = mf_wrap_add(t0, mf_int4_at((const int8_t *)row0, (size_t)(k - whole)) * value);
        t1 = mf_wrap_add(t1, mf_int4_at((const int8_t *)row1, (size_t)(k - whole)) * value);
    }
    acc[0] = mf_wrap_add(a0 >> 4, t0);
    acc[1] = mf_wrap_add(a1 >> 4, t1);
}

mf_status mf_fully_connected_int4_eval(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_tensor *filter = &op->inputs[1];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    const uint8_t *w = (const uint8_t *)filter->data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = filter->dims[0], depth = filter->dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    const mf_requant *requant;
    int32_t u;
    if (depth % 2 != 0 || d->filter_offset != 0 || depth > MFD_INT4_MAX_VALUES || !mfd_int8_offset_ok(-d->input_offset)) {
        return mfd_fully_connected_int4_eval_reference(op);
    }
    requant = mf_affine_table(op, d);
    for (u = 0; u < units; u += 2) {
        const int32_t u1 = u + 1 < units ? u + 1 : u;
        const mfd_requant q0 = dsp_requant(requant[u * d->channel_step]), q1 = dsp_requant(requant[u1 * d->channel_step]);
        int32_t b;
        for (b = 0; b < batches; ++b) {
            int32_t acc[2];
            fc_int4_rows(w + (size_t)u * depth / 2, w + (size_t)u1 * depth / 2, in + (size_t)b * depth, depth,
                         d->input_offset, acc);
            out[(size_t)b * units + u] =
                mfd_output(mf_wrap_add(acc[0], bias != NULL ? bias[u] : 0), &q0, d->output_zero_point, d->act_min, d->act_max);
            out[(size_t)b * units + u1] =
                mfd_output(mf_wrap_add(acc[1], bias != NULL ? bias[u1] : 0), &q1, d->output_zero_point, d->act_min, d->act_max);
        }
    }
    return MF_OK;
}
