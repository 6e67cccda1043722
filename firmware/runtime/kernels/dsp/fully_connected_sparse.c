/* FULLY_CONNECTED with a sparse filter on cores with the DSP extension (it
 * replaces kernels/fully_connected_sparse.c in such builds): 2:4 filters
 * (biases folded) row by row through mfd_sparse24_row; bitmaps take the
 * portable loop. Outputs are the dense kernel's. */
#include "dsp_affine.h"
#include "mfd_sparse24.h"

#define mf_fully_connected_eval_sparse mfd_fully_connected_eval_sparse_reference
#include "../fully_connected_sparse.c"
#undef mf_fully_connected_eval_sparse

mf_status mf_fully_connected_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_table(op, d);
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = op->inputs[1].dims[0], depth = op->inputs[1].dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const int8_t *values = (const int8_t *)(folded + units);
    const uint8_t *positions = (const uint8_t *)values + (size_t)units * (size_t)(depth / 2);
    const size_t row = ((size_t)depth + 7u) / 8u;
    int32_t u;
    if (d->weights != MF_WEIGHTS_SPARSE_2_4 || !d->bias_folded) {
        return mfd_fully_connected_eval_sparse_reference(op);
    }
    for (u = 0; u < units; ++u) {
        const mfd_requant q = dsp_requant(requant[u * d->channel_step]);
        int32_t b;
        for (b = 0; b < batches; ++b) {
            const int32_t acc = mfd_sparse24_row(in + (size_t)b * depth, values + (size_t)u * (size_t)(depth / 2),
                                                 positions + (size_t)u * row, depth, folded[u]);
            out[(size_t)b * units + u] = mfd_output(acc, &q, d->output_zero_point, d->act_min, d->act_max);
        }
    }
    return MF_OK;
}
