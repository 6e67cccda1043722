/* DEPTHWISE_CONV_2D fused with the FULLY_CONNECTED that alone reads its
 * output (mf_depthwise_fc.h): the depthwise output exists a band of rows at
 * a time, in the scratch, instead of whole in the arena. */
#include <string.h>

#include "mf_depthwise_fc.h"
#include "mf_sparse.h"

/* The band of depthwise output rows aims at this many bytes (more bands: less
 * arena, more calls of the depthwise loop and its set-up). */
#define MF_DEPTHWISE_FC_BAND_BYTES 512

/* Whether `depthwise` (a DEPTHWISE_CONV_2D op) and `fully_connected` (the
 * FULLY_CONNECTED that alone reads its output) run fused: int8 depthwise
 * weights, one batch, a fully connected op of one row over the whole
 * depthwise output with dense int8 weights, both kernels built in. */
static int mf_depthwise_fc_fusable(const mf_op *depthwise, const mf_op *fully_connected)
{
    const mf_tensor *input = &depthwise->inputs[0];
    const mf_tensor *output = &depthwise->outputs[0];
    const mf_tensor *weights = &fully_connected->inputs[1];
    mf_affine_data head;
    if (mf_find_kernel(MF_OP_DEPTHWISE_CONV_2D) == NULL || mf_find_kernel(MF_OP_FULLY_CONNECTED) == NULL ||
        depthwise->input_count < 2 || input->type != MF_INT8 || input->rank != 4 || input->dims[0] != 1 ||
        depthwise->inputs[1].type != MF_INT8 || output->type != MF_INT8 || output->rank != 4 || weights->type != MF_INT8 ||
        weights->rank != 2 || mf_tensor_flat_size(output) != weights->dims[1] ||
        mf_affine_check(fully_connected, MF_AFFINE_FULLY_CONNECTED, &head) != MF_OK) {
        return 0;
    }
    /* In flash a sparse filter would replace the dense one the bands are added with. */
    return !mf_op_data_in_flash(fully_connected) ||
           (mf_sparse_plan(fully_connected, MF_AFFINE_FULLY_CONNECTED, &head), head.weights == MF_WEIGHTS_INT8);
}

mf_status mf_depthwise_fc_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_op *depthwise = op->parts; /* NULL unless the engine fused two ops */
    const mf_op *fully_connected;
    const mf_tensor *middle;
    mf_depthwise_fc_data head;
    mf_depthwise_fc_data *record;
    mf_affine_data window;
    size_t fc_scratch = 0;
    size_t depthwise_scratch = 0;
    size_t fc_bytes;
    int32_t row_bytes;
    int32_t bands;
    int32_t rows;
    mf_status fc_status;
    mf_status depthwise_status;
    *scratch_bytes = 0;
    if (depthwise == NULL || !mf_depthwise_fc_fusable(depthwise, depthwise + 1)) {
        return MF_ERR_UNSUPPORTED_OP; /* the engine then runs the two ops apart */
    }
    fully_connected = depthwise + 1;
    middle = &depthwise->outputs[0];
    /* Records go down: the fully connected one first, then the depthwise one, then this one below them. */
    fc_status = mf_find_kernel(MF_OP_FULLY_CONNECTED)->prepare(fully_connected, &fc_scratch);
    if (fc_status != MF_OK && fc_status != MF_ERR_ARENA_TOO_SMALL) {
        return fc_status;
    }
    fc_bytes = mf_op_data_taken(op);
    depthwise_status = mf_find_kernel(MF_OP_DEPTHWISE_CONV_2D)->prepare(depthwise, &depthwise_scratch);
    if (depthwise_status != MF_OK && depthwise_status != MF_ERR_ARENA_TOO_SMALL) {
        return depthwise_status;
    }
    if (mf_affine_window(depthwise, MF_AFFINE_DEPTHWISE, &window) != MF_OK) {
        return MF_ERR_BAD_MODEL;
    }
    memset(&head, 0, sizeof head);
    head.fc_at = (int32_t)(sizeof head + (mf_op_data_taken(op) - fc_bytes));
    row_bytes = middle->dims[2] * middle->dims[3];
    rows = row_bytes > 0 && MF_DEPTHWISE_FC_BAND_BYTES / row_bytes > 1 ? MF_DEPTHWISE_FC_BAND_BYTES / row_bytes : 1;
    bands = (middle->dims[1] + rows - 1) / rows;
    rows = bands > 0 ? (middle->dims[1] + bands - 1) / bands : 1; /* bands of even height */
    /* The first band holds the rows the top padding reaches; the others read the input from a row on, pad_h 0. */
    if (rows * window.stride_h < window.pad_h) {
        rows = (window.pad_h + window.stride_h - 1) / window.stride_h;
    }
    head.band_rows = rows;
    head.fc_scratch_at = (int32_t)((depthwise_scratch + 3u) & ~(size_t)3u);
    head.band_at = head.fc_scratch_at + (int32_t)((fc_scratch + 3u) & ~(size_t)3u);
    head.sums_at = head.band_at + ((rows * row_bytes + 3) & ~3);
    *scratch_bytes = (size_t)head.sums_at + 4u * (size_t)fully_connected->inputs[1].dims[0];
    record = (mf_depthwise_fc_data *)mf_op_data(op, sizeof head);
    if (record == NULL || fc_status != MF_OK || depthwise_status != MF_OK) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    head.interior = *mf_depthwise_fc_depthwise(record);
    head.interior.pad_h = 0;
    if (head.interior.table != MF_TABLE_SCRATCH) { /* the depthwise record's table, sizeof(mf_affine_data) further on */
        head.interior.table = (int16_t)(head.interior.table + (int16_t)sizeof(mf_affine_data));
    }
    memcpy(record, &head, sizeof head);
    return MF_OK;
}

#ifndef MF_DEPTHWISE_FC_ADD /* the DSP kernel set has its own */
/* sums[u] += (row u of w, n weights from `w`, + filter_offset) . (x + input_offset), wrapping as the accumulator. */
static void mf_depthwise_fc_add(const int8_t *w, int32_t depth, int32_t units, const int8_t *x, int32_t n,
                                int32_t filter_offset, int32_t input_offset, int32_t *sums)
{
    int32_t u;
    for (u = 0; u < units; ++u, w += depth) {
        uint32_t sum = (uint32_t)sums[u];
        int32_t k;
        for (k = 0; k < n; ++k) {
            sum += (uint32_t)(((int32_t)w[k] + filter_offset) * ((int32_t)x[k] + input_offset));
        }
        sums[u] = (int32_t)sum;
    }
}
#define MF_DEPTHWISE_FC_ADD mf_depthwise_fc_add
#endif

mf_status mf_depthwise_fc_run(const mf_op *op, mf_eval_fn depthwise)
{
    const mf_depthwise_fc_data *data = (const mf_depthwise_fc_data *)op->data;
    const mf_affine_data *first = mf_depthwise_fc_depthwise(data);
    const mf_affine_data *fc = mf_depthwise_fc_fully_connected(data);
    uint8_t *scratch = (uint8_t *)op->scratch;
    int32_t *sums = (int32_t *)(void *)(scratch + data->sums_at);
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *middle = &op->inputs[3];
    const int8_t *w = (const int8_t *)op->inputs[4].data;
    const int32_t *bias = (const int32_t *)op->inputs[5].data;
    const int32_t units = op->inputs[4].dims[0], depth = op->inputs[4].dims[1];
    const int32_t out_h = middle->dims[1], row_bytes = middle->dims[2] * middle->dims[3];
    const int32_t input_row = input->dims[2] * input->dims[3];
    const int32_t input_offset = fc->bias_folded ? 0 : fc->input_offset; /* folded into the biases */
    int8_t *out = (int8_t *)op->outputs[0].data;
    mf_tensor inputs[3];
    mf_tensor band;
    mf_op depthwise_op = *op;
    mf_op fc_op = *op;
    const mf_requant *requant;
    int32_t y;
    int32_t u;
    memcpy(inputs, op->inputs, sizeof inputs);
    band = *middle;
    band.data = scratch + data->band_at;
    depthwise_op.inputs = inputs;
    depthwise_op.input_count = 3;
    depthwise_op.outputs = &band;
    depthwise_op.output_count = 1;
    fc_op.inputs = op->inputs + 3;
    fc_op.input_count = 3;
    fc_op.scratch = scratch + data->fc_scratch_at;
    fc_op.data = fc;
    requant = mf_affine_table(&fc_op, fc);
    for (u = 0; u < units; ++u) {
        sums[u] = fc->bias_folded ? mf_affine_folded(fc)[u] : bias != NULL ? bias[u] : 0;
    }
    for (y = 0; y < out_h; y += data->band_rows) {
        const int32_t shift = y == 0 ? 0 : y * first->stride_h - first->pad_h; /* first input row the band reads */
        mf_status status;
        inputs[0].data = (int8_t *)input->data + (ptrdiff_t)shift * input_row;
        inputs[0].dims[1] = input->dims[1] - shift;
        band.dims[1] = out_h - y < data->band_rows ? out_h - y : data->band_rows;
        depthwise_op.data = y == 0 ? first : &data->interior;
        status = depthwise(&depthwise_op);
        if (status != MF_OK) {
            return status;
        }
        MF_DEPTHWISE_FC_ADD(w + (size_t)y * row_bytes, depth, units, (const int8_t *)band.data, band.dims[1] * row_bytes,
                            fc->filter_offset, input_offset, sums);
    }
    for (u = 0; u < units; ++u) {
        out[u] = mf_affine_output(fc, requant[u * fc->channel_step], sums[u]);
    }
    return MF_OK;
}

/* The depthwise kernel's own eval: the loop its record names. */
mf_status mf_depthwise_fc_eval(const mf_op *op) { return mf_depthwise_fc_run(op, mf_depthwise_conv_eval_dense); }
