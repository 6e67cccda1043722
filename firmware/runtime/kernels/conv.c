/* CONV_2D, int8 with per-channel (or per-tensor) int8 weights and int32 bias:
 * TFLM reference_integer_ops::ConvPerChannel, bit for bit. */
#include "mf_sparse.h"
#include "mf_int4.h"

#ifndef MF_CONV_WEIGHT /* conv_int4.c compiles the dense loop below again with INT4 weights */
#define MF_CONV_WEIGHT(w, index) ((int32_t)(w)[index])
#define MF_CONV_EVAL mf_conv_eval_dense

mf_status mf_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    mf_affine_data head;
    const mf_status status = mf_affine_check(op, MF_AFFINE_CONV, &head);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    *scratch_bytes = mf_affine_plan_table(op, MF_AFFINE_CONV, &head, 0) + mf_sparse_windows_bytes(op, &head);
    return mf_affine_store(op, MF_AFFINE_CONV, &head);
}
#endif

/* Dense weights. */
mf_status MF_CONV_EVAL(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_table(op, d);
    const int32_t step = d->channel_step;
    /* The record's fields as locals: the compiler keeps them in registers across the output stores. */
    const int32_t stride_h = d->stride_h, stride_w = d->stride_w, pad_h = d->pad_h, pad_w = d->pad_w;
    const int32_t dilation_h = d->dilation_h, dilation_w = d->dilation_w, input_offset = d->input_offset;
    const int32_t per_group = d->channels_per_group;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2], f_c = filter->dims[3];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    int32_t oc;
    int32_t b;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * stride_h - pad_h;
            int8_t *out_row = out + ((size_t)b * out_h + oy) * out_w * out_c;
            /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
            for (oc = 0; oc < out_c; ++oc) {
                const int32_t group = oc / per_group;
                int32_t ox;
                for (ox = 0; ox < out_w; ++ox) {
                    const int32_t in_x0 = ox * stride_w - pad_w;
                    int32_t acc = 0;
                    int32_t fy;
                    for (fy = 0; fy < f_h; ++fy) {
                        const int32_t in_y = in_y0 + dilation_h * fy;
                        int32_t fx;
                        if (in_y < 0 || in_y >= in_h) {
                            continue;
                        }
                        for (fx = 0; fx < f_w; ++fx) {
                            const int32_t in_x = in_x0 + dilation_w * fx;
                            const int8_t *src;
                            size_t wt;
                            int32_t c;
                            if (in_x < 0 || in_x >= in_w) {
                                continue;
                            }
                            src = in + (((size_t)b * in_h + in_y) * in_w + in_x) * in_c + (size_t)group * f_c;
                            wt = (((size_t)oc * f_h + fy) * f_w + fx) * f_c;
                            for (c = 0; c < f_c; ++c) {
                                acc = mf_wrap_add(acc, MF_CONV_WEIGHT(w, wt + c) * ((int32_t)src[c] + input_offset));
                            }
                        }
                    }
                    if (bias != NULL) {
                        acc = mf_wrap_add(acc, bias[oc]);
                    }
                    out_row[(size_t)ox * out_c + oc] = mf_affine_output(d, requant[oc * step], acc);
                }
            }
        }
    }
    return MF_OK;
}
