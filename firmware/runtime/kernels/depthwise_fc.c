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
    /* In flash a sparse filter would replace the dense one the bands are added with (or the depthwise loop runs). */
    return mf_sparse_dense_filter_bytes(depthwise, MF_AFFINE_DEPTHWISE) == 0 &&
           (!mf_op_data_in_flash(fully_connected) ||
            (mf_sparse_plan(fully_connected, MF_AFFINE_FULLY_CONNECTED, &head), head.weights == MF_WEIGHTS_INT8));
}

/* Coded filters (mf_depthwise_fc.h): the code of a weight kept in the exceptions, a unit's bytes of codes. */
#define MF_CODED_ESCAPE (-64)
static int32_t mf_coded_row_bytes(int32_t depth) { return (depth + 7) / 8 * 7; }
/* A weight outside the 7-bit codes' -63..63: coded as the escape, its value kept in the exceptions. */
static int mf_coded_escaped(int32_t weight) { return weight <= MF_CODED_ESCAPE || weight > -MF_CODED_ESCAPE - 1; }

/* Prepare: the bytes of the fully connected filter coded; 0 when that saves nothing, or the filter is not
 * dense int8 with folded biases in a prepared image. */
static size_t mf_coded_bytes(const mf_op *fully_connected)
{
    const mf_tensor *filter = &fully_connected->inputs[1];
    const int8_t *w = (const int8_t *)filter->data;
    const size_t dense = (size_t)filter->dims[0] * (size_t)filter->dims[1];
    size_t exceptions = 0;
    size_t bytes;
    size_t i;
    mf_affine_data head;
    if (!mf_op_data_in_flash(fully_connected) || w == NULL ||
        mf_affine_check(fully_connected, MF_AFFINE_FULLY_CONNECTED, &head) != MF_OK) {
        return 0;
    }
    (void)mf_sparse_plan(fully_connected, MF_AFFINE_FULLY_CONNECTED, &head);
    if (head.weights != MF_WEIGHTS_INT8 || !head.bias_folded) {
        return 0;
    }
    for (i = 0; i < dense; ++i) {
        exceptions += (size_t)mf_coded_escaped(w[i]);
    }
    bytes = (size_t)filter->dims[0] * (4u + (size_t)mf_coded_row_bytes(filter->dims[1])) + 1u + exceptions;
    return bytes < dense ? bytes : 0;
}

/* Prepare: the filter coded into `out` (zeroed, mf_coded_bytes long). */
static void mf_code_filter(const mf_op *fully_connected, uint8_t *out)
{
    const int8_t *w = (const int8_t *)fully_connected->inputs[1].data;
    const int32_t units = fully_connected->inputs[1].dims[0], depth = fully_connected->inputs[1].dims[1];
    const int32_t row = mf_coded_row_bytes(depth);
    uint8_t *codes = out + 4u * (size_t)units;
    int8_t *exceptions = (int8_t *)(codes + (size_t)units * (size_t)row + 1u);
    int32_t count = 0;
    int32_t u;
    for (u = 0; u < units; ++u) {
        int32_t k;
        memcpy(out + 4u * (size_t)u, &count, sizeof count);
        for (k = 0; k < depth; ++k) {
            const int32_t value = w[(size_t)u * depth + k];
            const int escaped = mf_coded_escaped(value);
            const uint32_t code = (uint32_t)(escaped ? MF_CODED_ESCAPE : value) & 0x7Fu;
            uint8_t *at = codes + (size_t)u * row + (size_t)(7 * k / 8);
            if (escaped) {
                exceptions[count++] = (int8_t)value;
            }
            at[0] |= (uint8_t)(code << (7 * k % 8));
            at[1] |= (uint8_t)(code >> (8 - 7 * k % 8)); /* the rest of a code across bytes (none when it fits) */
        }
    }
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
    size_t coded_bytes;
    size_t coded_taken;
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
    coded_bytes = mf_coded_bytes(fully_connected);
    if (coded_bytes != 0) {
        uint8_t *coded = (uint8_t *)mf_op_data(op, coded_bytes);
        if (coded != NULL) {
            mf_code_filter(fully_connected, coded);
        }
    }
    coded_taken = mf_op_data_taken(op) - fc_bytes;
    depthwise_status = mf_find_kernel(MF_OP_DEPTHWISE_CONV_2D)->prepare(depthwise, &depthwise_scratch);
    if (depthwise_status != MF_OK && depthwise_status != MF_ERR_ARENA_TOO_SMALL) {
        return depthwise_status;
    }
    if (mf_affine_window(depthwise, MF_AFFINE_DEPTHWISE, &window) != MF_OK) {
        return MF_ERR_BAD_MODEL;
    }
    memset(&head, 0, sizeof head);
    head.coded_at = coded_bytes != 0 ? (int32_t)(sizeof head + (mf_op_data_taken(op) - fc_bytes - coded_taken)) : 0;
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
    *scratch_bytes = (size_t)head.sums_at + (coded_bytes != 0 ? 8u : 4u) * (size_t)fully_connected->inputs[1].dims[0];
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

/* One weight of a coded filter into acc: its exception when it is the escape code. */
#define MF_CODED_TAKE(code, x)                                     \
    do {                                                           \
        const int32_t value_ = (code);                             \
        acc += (uint32_t)((value_ == MF_CODED_ESCAPE ? exceptions[e++] : value_) * (x)); \
    } while (0)

/* sums[u] += unit u's coded weights k0 .. k0 + n - 1 . x (biases folded: no offsets), wrapping as the
 * accumulator; next_exception[u]: its next exception, advanced. */
static void mf_depthwise_fc_add_coded(const uint8_t *coded, int32_t depth, int32_t units, int32_t k0, const int8_t *x,
                                      int32_t n, int32_t *next_exception, int32_t *sums)
{
    const int32_t row = mf_coded_row_bytes(depth);
    const int8_t *exceptions = (const int8_t *)(coded + 4u * (size_t)units + (size_t)units * (size_t)row + 1u);
    int32_t u;
    for (u = 0; u < units; ++u) {
        const uint8_t *codes = coded + 4u * (size_t)units + (size_t)u * (size_t)row;
        const int8_t *in = x;
        int32_t e = next_exception[u];
        uint32_t acc = (uint32_t)sums[u];
        int32_t k = k0;
        while (k < k0 + n) {
            if ((k & 7) == 0 && k0 + n - k >= 8) { /* eight codes in seven bytes, at constant shifts */
                const uint8_t *g = codes + (k >> 3) * 7;
                const uint32_t a = (uint32_t)g[0] | (uint32_t)g[1] << 8 | (uint32_t)g[2] << 16 | (uint32_t)g[3] << 24;
                const uint32_t b = (uint32_t)g[3] | (uint32_t)g[4] << 8 | (uint32_t)g[5] << 16 | (uint32_t)g[6] << 24;
                MF_CODED_TAKE((int32_t)(a << 25) >> 25, in[0]);
                MF_CODED_TAKE((int32_t)(a << 18) >> 25, in[1]);
                MF_CODED_TAKE((int32_t)(a << 11) >> 25, in[2]);
                MF_CODED_TAKE((int32_t)(a << 4) >> 25, in[3]);
                MF_CODED_TAKE((int32_t)(b << 21) >> 25, in[4]);
                MF_CODED_TAKE((int32_t)(b << 14) >> 25, in[5]);
                MF_CODED_TAKE((int32_t)(b << 7) >> 25, in[6]);
                MF_CODED_TAKE((int32_t)b >> 25, in[7]);
                k += 8;
                in += 8;
            } else { /* band edges off a group */
                const int32_t bit = 7 * k;
                const uint32_t pair = (uint32_t)codes[bit >> 3] | (uint32_t)codes[(bit >> 3) + 1] << 8;
                MF_CODED_TAKE((int32_t)(((pair >> (bit & 7)) & 0x7Fu) ^ 0x40u) - 0x40, *in);
                ++k;
                ++in;
            }
        }
        next_exception[u] = e;
        sums[u] = (int32_t)acc;
    }
}

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
    const uint8_t *coded = data->coded_at != 0 ? (const uint8_t *)data + data->coded_at : NULL;
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
        if (coded != NULL) { /* each unit's first exception */
            sums[units + u] = ((const int32_t *)(const void *)coded)[u];
        }
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
        if (coded != NULL) {
            mf_depthwise_fc_add_coded(coded, depth, units, y * row_bytes, (const int8_t *)band.data, band.dims[1] * row_bytes,
                                      sums + units, sums);
        } else {
            MF_DEPTHWISE_FC_ADD(w + (size_t)y * row_bytes, depth, units, (const int8_t *)band.data,
                                band.dims[1] * row_bytes, fc->filter_offset, input_offset, sums);
        }
    }
    for (u = 0; u < units; ++u) {
        out[u] = mf_affine_output(fc, requant[u * fc->channel_step], sums[u]);
    }
    return MF_OK;
}

/* The depthwise kernel's own eval: the loop its record names. */
mf_status mf_depthwise_fc_eval(const mf_op *op) { return mf_depthwise_fc_run(op, mf_depthwise_conv_eval_dense); }
