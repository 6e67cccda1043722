/* CONV_2D for cores with the DSP extension, bit for bit the portable kernel's
 * output (it replaces kernels/conv.c in such builds and reuses its checks).
 *
 * Per pair of output pixels of one row, the receptive fields are copied into
 * the scratch buffer as int16 with the input offset added (zeros where the
 * field leaves the input: the reference skips those taps), each run of four
 * values stored in the order SXTB16 unpacks weights: 0, 2, 1, 3. Then each
 * pair of output channels is a 2 x 2 block of dot products, two MACs per
 * SMLAD, every weight word and column word loaded once per block. Scratch:
 * the per-channel requantization, then two int16 columns. */
#include "mfd_dsp.h"

#define mf_conv_prepare mfd_conv_prepare_reference
#define mf_conv_eval mfd_conv_eval_reference
#include "../conv.c"
#undef mf_conv_prepare
#undef mf_conv_eval

/* Where value k of a column goes: inside whole runs of four, 0 2 1 3. */
static inline int32_t mfd_column_slot(int32_t k, int32_t whole)
{
    static const int8_t order[4] = {0, 2, 1, 3};
    return k < whole ? (k & ~3) + order[k & 3] : k;
}

static size_t mfd_conv_column_values(const mf_op *op)
{
    const mf_tensor *filter = &op->inputs[1];
    return (size_t)filter->dims[1] * (size_t)filter->dims[2] * (size_t)filter->dims[3];
}

static size_t mfd_conv_scratch(const mf_op *op)
{
    const size_t column = (mfd_conv_column_values(op) + 1u) & ~(size_t)1u; /* keeps the second column 4-byte aligned */
    return (size_t)op->outputs[0].dims[3] * sizeof(mfd_requant) + 2u * column * sizeof(int16_t);
}

mf_status mf_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_status status = mfd_conv_prepare_reference(op, scratch_bytes);
    if (status == MF_OK) {
        *scratch_bytes = mfd_conv_scratch(op);
    }
    return status;
}

/* The receptive field of output (oy, ox), channels [c0, c0 + f_c), as a column. */
static void mfd_conv_column(const mf_op *op, const conv_geometry *g, int32_t b, int32_t oy, int32_t ox, int32_t c0,
                            int16_t *column)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const int8_t *in = (const int8_t *)input->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t total = f_h * f_w * f_c;
    const int32_t whole = total & ~3;
    const int32_t offset = -input->zero_point;
    const uint32_t offsets = mfd_dup16(offset);
    const int32_t in_y0 = oy * g->stride_h - g->pad_h;
    const int32_t in_x0 = ox * g->stride_w - g->pad_w;
    int32_t k = 0;
    int32_t fy;
    for (fy = 0; fy < f_h; ++fy) {
        const int32_t in_y = in_y0 + g->dilation_h * fy;
        int32_t fx;
        for (fx = 0; fx < f_w; ++fx) {
            const int32_t in_x = in_x0 + g->dilation_w * fx;
            const int valid = in_y >= 0 && in_y < in_h && in_x >= 0 && in_x < in_w;
            const int8_t *src;
            int32_t c = 0;
            if (!valid) {
                for (; c < f_c; ++c, ++k) {
                    column[mfd_column_slot(k, whole)] = 0;
                }
                continue;
            }
            src = in + (((size_t)b * in_h + in_y) * in_w + in_x) * in_c + c0;
            if ((k & 3) == 0) {
                for (; c + 4 <= f_c && k + 4 <= whole; c += 4, k += 4) {
                    const uint32_t x = mfd_read32(src + c);
                    mfd_write32(&column[k], mfd_sxtab16(offsets, x));
                    mfd_write32(&column[k + 2], mfd_sxtab16(offsets, mfd_ror8(x)));
                }
            }
            for (; c < f_c; ++c, ++k) {
                column[mfd_column_slot(k, whole)] = (int16_t)(src[c] + offset);
            }
        }
    }
}

/* acc[2 * r + p] += weights row r . column p, for two rows and two columns. */
static void mfd_conv_block(const int8_t *row0, const int8_t *row1, const int16_t *col0, const int16_t *col1,
                           int32_t total, int32_t acc[4])
{
    const int32_t whole = total & ~3;
    int32_t a00 = acc[0], a01 = acc[1], a10 = acc[2], a11 = acc[3];
    int32_t k;
    for (k = 0; k < whole; k += 4) {
        const uint32_t w0 = mfd_read32(row0 + k);
        const uint32_t w1 = mfd_read32(row1 + k);
        const uint32_t w0even = mfd_sxtb16(w0), w0odd = mfd_sxtb16(mfd_ror8(w0));
        const uint32_t w1even = mfd_sxtb16(w1), w1odd = mfd_sxtb16(mfd_ror8(w1));
        const uint32_t x0even = mfd_read32(col0 + k), x0odd = mfd_read32(col0 + k + 2);
        const uint32_t x1even = mfd_read32(col1 + k), x1odd = mfd_read32(col1 + k + 2);
        a00 = mfd_smlad(w0even, x0even, a00);
        a00 = mfd_smlad(w0odd, x0odd, a00);
        a01 = mfd_smlad(w0even, x1even, a01);
        a01 = mfd_smlad(w0odd, x1odd, a01);
        a10 = mfd_smlad(w1even, x0even, a10);
        a10 = mfd_smlad(w1odd, x0odd, a10);
        a11 = mfd_smlad(w1even, x1even, a11);
        a11 = mfd_smlad(w1odd, x1odd, a11);
    }
    for (; k < total; ++k) {
        a00 = mf_wrap_add(a00, row0[k] * col0[k]);
        a01 = mf_wrap_add(a01, row0[k] * col1[k]);
        a10 = mf_wrap_add(a10, row1[k] * col0[k]);
        a11 = mf_wrap_add(a11, row1[k] * col1[k]);
    }
    acc[0] = a00;
    acc[1] = a01;
    acc[2] = a10;
    acc[3] = a11;
}

mf_status mf_conv_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_c = input->dims[3], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t groups = in_c / f_c, per_group = out_c / groups;
    const int32_t total = (int32_t)mfd_conv_column_values(op);
    mfd_requant *requant = (mfd_requant *)op->scratch;
    int16_t *col0 = (int16_t *)(requant + out_c);
    int16_t *col1 = col0 + ((total + 1) & ~1);
    int32_t act_min;
    int32_t act_max;
    conv_geometry g;
    int32_t oc;
    int32_t b;
    mf_status status = conv_check(op, &g);
    if (status == MF_OK) {
        status = mf_activation_range_int8(mf_option_u8(&op->options, OPT_ACTIVATION, MF_ACT_NONE), output, &act_min,
                                          &act_max);
    }
    if (status != MF_OK) {
        return status;
    }
    if (!mfd_int8_offset_ok(input->zero_point)) {
        return mfd_conv_eval_reference(op);
    }
    if (op->scratch == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    for (oc = 0; oc < out_c; ++oc) {
        requant[oc] = mfd_requant_for(input, filter, oc, output);
    }
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
        for (oy = 0; oy < out_h; ++oy) {
            int32_t ox;
            for (ox = 0; ox < out_w; ox += 2) {
                const int pair = ox + 1 < out_w;
                int8_t *out0 = out + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                int32_t group;
                for (group = 0; group < groups; ++group) {
                    const int32_t first = group * per_group, end = first + per_group;
                    mfd_conv_column(op, &g, b, oy, ox, group * f_c, col0);
                    if (pair) {
                        mfd_conv_column(op, &g, b, oy, ox + 1, group * f_c, col1);
                    }
                    for (oc = first; oc < end; oc += 2) {
                        const int32_t oc1 = oc + 1 < end ? oc + 1 : oc;
                        int32_t acc[4];
                        acc[0] = acc[1] = bias != NULL ? bias[oc] : 0;
                        acc[2] = acc[3] = bias != NULL ? bias[oc1] : 0;
                        mfd_conv_block(w + (size_t)oc * total, w + (size_t)oc1 * total, col0, pair ? col1 : col0,
                                       total, acc);
                        out0[oc] = mfd_output(acc[0], requant[oc], output->zero_point, act_min, act_max);
                        out0[oc1] = mfd_output(acc[2], requant[oc1], output->zero_point, act_min, act_max);
                        if (pair) {
                            out0[out_c + oc] = mfd_output(acc[1], requant[oc], output->zero_point, act_min, act_max);
                            out0[out_c + oc1] = mfd_output(acc[3], requant[oc1], output->zero_point, act_min, act_max);
                        }
                    }
                }
            }
        }
    }
    return MF_OK;
}
