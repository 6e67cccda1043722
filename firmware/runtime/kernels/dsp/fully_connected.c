/* FULLY_CONNECTED for cores with the DSP extension, bit for bit the portable
 * kernel's output (it replaces kernels/fully_connected.c in such builds and
 * shares its prologue).
 *
 * Weight rows against the input vector, SXTAB16 widening four int8 (and
 * adding the zero-point offset) in one step per pair of lanes, SMLAD doing
 * two MACs: with the model's offsets two rows at a time, with folded biases
 * (prepared images) four, each input word unpacked once for all of them. No
 * scratch: the requantization is in the op-data record. */
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

/* The dot products of four weight rows (row, row + depth, row + 2 depth, row + 3 depth) with x, no offsets
 * (folded biases): acc[0..3] start at the biases. Each input word is widened once for the four rows. On a DSP
 * core one asm block of thirteen registers: 25 instructions for 16 MACs (two loads and two SXTB16 for the
 * input word, then a weight load, two SXTB16 and two SMLAD a row, the loop test). */
#if defined(MFD_ASM_LOOPS) /* inlined at -O2, GCC finds no thirteen free registers for the asm block */
#define MFD_FC_ROWS4_CALL __attribute__((noinline))
#else
#define MFD_FC_ROWS4_CALL inline
#endif
static MFD_FC_ROWS4_CALL void mfd_fc_rows4(const int8_t *row, const int8_t *x, int32_t depth, int32_t acc[4])
{
    const int8_t *end = x + (depth & ~3);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t k;
#if defined(MFD_ASM_LOOPS)
    if (x != end) {
        const int32_t depth3 = 3 * depth;
        uint32_t xe, xo, w, t;
        __asm__(
                "1:\n\t"
                "ldr %[xe], [%[x]], #4\n\t"
                "ldr %[w], [%[row], %[depth]]\n\t"
                "sxtb16 %[xo], %[xe], ror #8\n\t"
                "sxtb16 %[xe], %[xe]\n\t"
                "sxtb16 %[t], %[w]\n\t"
                "sxtb16 %[w], %[w], ror #8\n\t"
                "smlad %[a1], %[t], %[xe], %[a1]\n\t"
                "smlad %[a1], %[w], %[xo], %[a1]\n\t"
                "ldr %[w], [%[row], %[depth], lsl #1]\n\t"
                "sxtb16 %[t], %[w]\n\t"
                "sxtb16 %[w], %[w], ror #8\n\t"
                "smlad %[a2], %[t], %[xe], %[a2]\n\t"
                "smlad %[a2], %[w], %[xo], %[a2]\n\t"
                "ldr %[w], [%[row], %[depth3]]\n\t"
                "sxtb16 %[t], %[w]\n\t"
                "sxtb16 %[w], %[w], ror #8\n\t"
                "smlad %[a3], %[t], %[xe], %[a3]\n\t"
                "smlad %[a3], %[w], %[xo], %[a3]\n\t"
                "ldr %[w], [%[row]], #4\n\t"
                "sxtb16 %[t], %[w]\n\t"
                "sxtb16 %[w], %[w], ror #8\n\t"
                "smlad %[a0], %[t], %[xe], %[a0]\n\t"
                "smlad %[a0], %[w], %[xo], %[a0]\n\t"
                "cmp %[x], %[end]\n\t"
                "bne 1b"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [row] "+r"(row), [x] "+r"(x),
                  [xe] "=&r"(xe), [xo] "=&r"(xo), [w] "=&r"(w), [t] "=&r"(t)
                : [depth] "r"(depth), [depth3] "r"(depth3), [end] "r"(end)
                : "cc", "memory");
    }
#else
    for (; x != end; x += 4, row += 4) {
        const uint32_t xw = mfd_read32(x), x_even = mfd_sxtb16(xw), x_odd = mfd_sxtb16_ror8(xw);
        const uint32_t w0 = mfd_read32(row), w1 = mfd_read32(row + depth);
        const uint32_t w2 = mfd_read32(row + 2 * depth), w3 = mfd_read32(row + 3 * depth);
        a0 = mfd_smlad(mfd_sxtb16_ror8(w0), x_odd, mfd_smlad(mfd_sxtb16(w0), x_even, a0));
        a1 = mfd_smlad(mfd_sxtb16_ror8(w1), x_odd, mfd_smlad(mfd_sxtb16(w1), x_even, a1));
        a2 = mfd_smlad(mfd_sxtb16_ror8(w2), x_odd, mfd_smlad(mfd_sxtb16(w2), x_even, a2));
        a3 = mfd_smlad(mfd_sxtb16_ror8(w3), x_odd, mfd_smlad(mfd_sxtb16(w3), x_even, a3));
    }
#endif
    for (k = 0; k < (depth & 3); ++k) {
        const int32_t value = x[k];
        a0 = mf_wrap_add(a0, row[k] * value);
        a1 = mf_wrap_add(a1, row[depth + k] * value);
        a2 = mf_wrap_add(a2, row[2 * depth + k] * value);
        a3 = mf_wrap_add(a3, row[3 * depth + k] * value);
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

/* Dense weights, folded biases (no offset per MAC): units in fours, each input word sign-extended once for
 * four rows (mfd_fc_rows4), the last one to three alone; unit u's requantization is table[u * step]. */
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
    const int32_t step = d->channel_step;
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    int32_t b;
    for (b = 0; b < batches; ++b, in += depth) {
        const int8_t *row = w;
        const mfd_requant *q = requant;
        int32_t u;
        for (u = 0; u + 4 <= units; u += 4, row += 4 * depth, q += 4 * step, out += 4) {
            int32_t acc[4];
            MFD_MEMCPY(acc, folded + u, sizeof acc);
            mfd_fc_rows4(row, in, depth, acc);
            mfd_write32(out, mfd_outputs4(acc[0], acc[1], acc[2], acc[3], q, q + step, q + 2 * step, q + 3 * step, o));
        }
        for (; u < units; ++u, row += depth, q += step, ++out) {
            int32_t acc = folded[u], unused = 0;
            mfd_fc_rows(row, row, in, depth, 0u, 0u, &acc, &unused); /* no offsets: folded */
            *out = mfd_output_of(acc, q, o);
        }
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
