/* FULLY_CONNECTED, int8 with per-tensor or per-channel int8 weights and int32 bias:
 * TFLM reference_integer_ops::FullyConnected, bit for bit. */
#include "mf_sparse.h"
#include "mf_int4.h"

#ifndef MF_FC_WEIGHT /* fully_connected_int4.c compiles the dense loop below again with INT4 weights */
#define MF_FC_WEIGHT(w, index) ((int32_t)(w)[index])
#define MF_FC_EVAL mf_fully_connected_eval_dense

mf_status mf_fully_connected_prepare(const mf_op *op, size_t *scratch_bytes)
{
    return mf_affine_prepare(op, MF_AFFINE_FULLY_CONNECTED, scratch_bytes);
}
#endif

#if !defined(MF_FC_INT4) && !defined(MFD_FULLY_CONNECTED) /* the DSP kernel set has its own */
/* Dense int8 weights with folded biases (prepared images, filter zero point 0,
 * mf_sparse.h): acc = folded bias + w . x, no offset per MAC. */
mf_status mf_fully_connected_eval_folded(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_record_table(d);
    const int32_t *folded = mf_affine_folded(d);
    const int32_t step = d->channel_step;
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    const int8_t *w = (const int8_t *)op->inputs[1].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = op->inputs[1].dims[0];
    const int32_t depth = op->inputs[1].dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    int32_t b;
    for (b = 0; b < batches; ++b, in += depth) {
        const int8_t *row = w;
        int32_t u;
        for (u = 0; u < units; ++u) {
            uint32_t acc = (uint32_t)folded[u]; /* wrapping, as the reference's sum */
            int32_t k;
            for (k = 0; k < depth; ++k) {
                acc += (uint32_t)((int32_t)*row++ * in[k]);
            }
            *out++ = mf_affine_output(d, requant[u * step], (int32_t)acc);
        }
    }
    return MF_OK;
}
#endif

/* Dense weights, biases and offsets as the model has them (the interpreter's records). */
mf_status MF_FC_EVAL(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_table(op, d);
    const int32_t step = d->channel_step;
    const int32_t filter_offset = d->filter_offset, input_offset = d->input_offset; /* in registers */
    const mf_tensor *filter = &op->inputs[1];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = filter->dims[0];
    const int32_t depth = filter->dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    int32_t u;
    for (u = 0; u < units; ++u) {
        int32_t b;
        for (b = 0; b < batches; ++b) {
            const int8_t *x = in + (size_t)b * depth;
            const size_t row = (size_t)u * depth;
            int32_t acc = 0;
            int32_t k;
            for (k = 0; k < depth; ++k) {
                acc = mf_wrap_add(acc, (MF_FC_WEIGHT(w, row + k) + filter_offset) * ((int32_t)x[k] + input_offset));
            }
            if (bias != NULL) {
                acc = mf_wrap_add(acc, bias[u]);
            }
            out[(size_t)b * units + u] = mf_affine_output(d, requant[u * step], acc);
        }
    }
    return MF_OK;
}
