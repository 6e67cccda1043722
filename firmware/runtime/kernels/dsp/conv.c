/* CONV_2D for cores with the DSP extension, bit for bit the portable kernel's
 * output (it replaces kernels/conv.c in such builds and shares its prologue).
 *
 * Per pair of output pixels (in row-major order, across rows where the width
 * is odd), the receptive fields become int16 columns in the scratch buffer;
 * each pair of output channels is then a 2 x 2 block of dot products, two
 * MACs per SMLAD (mfd_gemm.h). Scratch: two columns; the per-channel
 * requantization is in the op-data record. */
#include "dsp_affine.h"
#include "mfd_gemm.h"
#include "mfd_sparse24.h"

#define mf_conv_prepare mfd_conv_prepare_reference
#define mf_conv_eval_dense mfd_conv_eval_dense_reference
#include "../conv.c"
#undef mf_conv_prepare
#undef mf_conv_eval_dense


mf_status mf_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *filter = &op->inputs[1];
    mf_affine_data head;
    const mf_status status = mf_affine_check(op, MF_AFFINE_CONV, &head);
    size_t columns, sparse_column;
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (!mfd_int8_offset_ok(op->inputs[0].zero_point)) {
        return mfd_conv_prepare_reference(op, scratch_bytes);
    }
    head.variant = MFD_CONV_GEMM; /* INT4 weights too: dsp/conv_int4.c's loop reads the same columns */
    columns = mfd_columns_bytes(filter->dims[1] * filter->dims[2] * filter->dims[3]);
    sparse_column = mfd_sparse24_scratch(op, &head); /* dsp/conv_sparse.c's, in place of the columns */
    *scratch_bytes = mf_affine_plan_table(op, MF_AFFINE_CONV, &head, 1) + (sparse_column > columns ? sparse_column : columns);
    return mf_affine_store(op, MF_AFFINE_CONV, &head);
}

/* Columns times weight rows (record variant MFD_CONV_GEMM). */
mf_status mfd_conv_eval_gemm(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_c = input->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const mfd_requant *requant;
    int16_t *columns;
    mfd_patch patch;
    int32_t b;
    requant = dsp_requant_table(op, d);
    columns = (int16_t *)mf_affine_scratch(op, d);
    dsp_patch_window(&patch, op, d, in_c, filter->dims[3]);
    for (b = 0; b < batches; ++b) {
        patch.in = (const int8_t *)input->data + (size_t)b * patch.in_h * patch.in_w * in_c;
        mfd_conv_rows(&patch, (const int8_t *)filter->data, bias, requant, 0, out_h, out_w, out_c, d->channels_per_group,
                      mfd_out_for(d->output_zero_point, d->act_min, d->act_max), out + (size_t)b * out_h * out_w * out_c,
                      columns);
    }
    return MF_OK;
}

/* The loop prepare chose (record variant); prepared firmware calls it directly (mf_eval_variants.h). */
mf_status mf_conv_eval_dense(const mf_op *op)
{
    return ((const mf_affine_data *)op->data)->variant == MFD_CONV_GEMM ? mfd_conv_eval_gemm(op)
                                                                         : mfd_conv_eval_dense_reference(op);
}
