/* CONV_2D for cores with the DSP extension, bit for bit the portable kernel's
 * output (it replaces kernels/conv.c in such builds and reuses its checks).
 *
 * Per pair of output pixels of one row, the receptive fields become int16
 * columns in the scratch buffer; each pair of output channels is then a 2 x 2
 * block of dot products, two MACs per SMLAD (mfd_gemm.h). Scratch: the
 * per-channel requantization, then two columns. */
#include "mfd_gemm.h"

#define mf_conv_prepare mfd_conv_prepare_reference
#define mf_conv_eval mfd_conv_eval_reference
#include "../conv.c"
#undef mf_conv_prepare
#undef mf_conv_eval

static int32_t mfd_conv_column_values(const mf_op *op)
{
    const mf_tensor *filter = &op->inputs[1];
    return filter->dims[1] * filter->dims[2] * filter->dims[3];
}

mf_status mf_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_status status = mfd_conv_prepare_reference(op, scratch_bytes);
    if (status == MF_OK) {
        *scratch_bytes = (size_t)op->outputs[0].dims[3] * sizeof(mfd_requant) + mfd_columns_bytes(mfd_conv_column_values(op));
    }
    return status;
}

mf_status mf_conv_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_c = input->dims[3], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    mfd_requant *requant = (mfd_requant *)op->scratch;
    mfd_patch patch;
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
    if (requant == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    for (oc = 0; oc < out_c; ++oc) {
        requant[oc] = mfd_requant_for(input, filter, oc, output);
    }
    patch.in_h = input->dims[1];
    patch.in_w = input->dims[2];
    patch.in_c = in_c;
    patch.f_h = filter->dims[1];
    patch.f_w = filter->dims[2];
    patch.f_c = f_c;
    patch.stride_h = g.stride_h;
    patch.stride_w = g.stride_w;
    patch.pad_h = g.pad_h;
    patch.pad_w = g.pad_w;
    patch.dilation_h = g.dilation_h;
    patch.dilation_w = g.dilation_w;
    patch.offset = -input->zero_point;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        patch.in = (const int8_t *)input->data + (size_t)b * patch.in_h * patch.in_w * in_c;
        /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
        for (oy = 0; oy < out_h; ++oy) {
            mfd_conv_row(&patch, (const int8_t *)filter->data, bias, requant, oy, out_w, out_c, out_c / (in_c / f_c),
                         mfd_out_for(output->zero_point, act_min, act_max),
                         out + ((size_t)b * out_h + oy) * out_w * out_c, (int16_t *)(requant + out_c));
        }
    }
    return MF_OK;
}
