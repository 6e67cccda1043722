/* FULLY_CONNECTED with a sparse filter of a prepared image (mf_sparse.h):
 * only the stored weights are multiplied; outputs are the dense kernel's. */
#include "mf_sparse.h"

mf_status mf_fully_connected_eval_sparse(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_requant *requant = mf_affine_table(op, d);
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)op->inputs[0].data;
    int8_t *out = (int8_t *)op->outputs[0].data;
    const int32_t units = op->inputs[1].dims[0];
    const int32_t depth = op->inputs[1].dims[1];
    const int32_t batches = mf_tensor_flat_size(&op->inputs[0]) / depth;
    int32_t b;
    if (d->bias_folded) { /* 2:4 (biases folded): four batches at a time; else a bitmap */
        for (b = 0; b < batches; b += 4) {
            const int32_t count = batches - b < 4 ? batches - b : 4;
            const int8_t *x[4];
            int32_t i;
            for (i = 0; i < count; ++i) {
                x[i] = in + (size_t)(b + i) * depth;
            }
            mf_sparse24_pixels(op, d, requant, x, count, out + (size_t)b * units);
        }
        return MF_OK;
    }
    for (b = 0; b < batches; ++b) {
        int32_t u;
        for (u = 0; u < units; ++u) {
            mf_sparse_cursor cursor = mf_sparse_channel(op, d, u);
            int32_t acc = mf_bitmap_tap(d, &cursor, in + (size_t)b * depth, depth, 0);
            if (bias != NULL) {
                acc = mf_wrap_add(acc, bias[u]);
            }
            out[(size_t)b * units + u] = mf_affine_output(d, requant[u * d->channel_step], acc);
        }
    }
    return MF_OK;
}
