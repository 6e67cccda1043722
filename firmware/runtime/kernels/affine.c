/* The prologue of CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED (mf_affine.h),
 * as TFLM's conv, depthwise_conv and fully_connected Prepare compute it. */
#include <stddef.h>
#include <string.h>

#include "mf_affine.h"
#include "mf_sparse.h"

/* Builtin option field ids of each kind (-1: not in its options table). */
typedef struct affine_fields {
    int padding, stride_w, stride_h, depth_multiplier, activation, dilation_w, dilation_h;
} affine_fields;

static const affine_fields affine_options[3] = {
    {0, 1, 2, -1, 3, 4, 5},       /* Conv2DOptions */
    {0, 1, 2, 3, 4, 5, 6},        /* DepthwiseConv2DOptions */
    {-1, -1, -1, -1, 0, -1, -1},  /* FullyConnectedOptions (weights_format is field 1) */
};
enum { FC_WEIGHTS_FORMAT = 1 };

/* Output channels and the axis of the filter they run along. */
static void affine_channels(const mf_op *op, mf_affine_kind kind, int32_t *channels, int32_t *axis)
{
    const mf_tensor *filter = &op->inputs[1];
    *axis = kind == MF_AFFINE_DEPTHWISE ? 3 : 0;
    *channels = filter->dims[*axis];
}

/* Types, quantization and bias, common to the three. */
static mf_status affine_check_tensors(const mf_op *op, mf_affine_kind kind)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    int32_t channels;
    int32_t axis;
    if (op->input_count < 2 || op->input_count > 3 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != MF_INT8 || (filter->type != MF_INT8 && filter->type != MF_INT4) || output->type != MF_INT8) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (kind == MF_AFFINE_FULLY_CONNECTED) {
        if (filter->rank != 2 || input->quant_count != 1 || output->quant_count != 1 || filter->quant_count < 1 ||
            mf_option_u8(&op->options, FC_WEIGHTS_FORMAT, 0) != 0) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
    } else if (input->rank != 4 || filter->rank != 4 || output->rank != 4 || input->quant_count != 1 ||
               output->quant_count != 1 || filter->quant_count < 1 || !(output->scale > 0.0f) ||
               (kind == MF_AFFINE_DEPTHWISE && filter->dims[0] != 1)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    affine_channels(op, kind, &channels, &axis);
    if (filter->quant_count != 1 && (filter->quant_count != channels || filter->quant_dim != axis)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (op->input_count == 3 && op->inputs[2].rank >= 0) {
        if (op->inputs[2].type != MF_INT32) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (mf_tensor_flat_size(&op->inputs[2]) != channels) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return MF_OK;
}

/* A window parameter the record holds in 16 bits: 1 to INT16_MAX. */
static int affine_short(int32_t value) { return value >= 1 && value <= INT16_MAX; }

/* Strides, dilations, padding and output shape of conv and depthwise. */
static mf_status affine_check_window(const mf_op *op, mf_affine_kind kind, const affine_fields *f, mf_affine_data *head)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t padding = mf_option_u8(&op->options, f->padding, MF_PADDING_SAME);
    int32_t channels;
    int32_t axis;
    affine_channels(op, kind, &channels, &axis);
    const int32_t stride_w = mf_option_i32(&op->options, f->stride_w, 1);
    const int32_t stride_h = mf_option_i32(&op->options, f->stride_h, 1);
    const int32_t dilation_w = mf_option_i32(&op->options, f->dilation_w, 1);
    const int32_t dilation_h = mf_option_i32(&op->options, f->dilation_h, 1);
    int32_t per_group;
    int32_t pad_h;
    int32_t pad_w;
    if (!affine_short(stride_w) || !affine_short(stride_h) || !affine_short(dilation_w) || !affine_short(dilation_h) ||
        (padding != MF_PADDING_SAME && padding != MF_PADDING_VALID)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    if (kind == MF_AFFINE_CONV) {
        if (filter->dims[3] < 1 || input->dims[3] < filter->dims[3] || input->dims[3] % filter->dims[3] != 0 ||
            channels % (input->dims[3] / filter->dims[3]) != 0) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        per_group = channels / (input->dims[3] / filter->dims[3]);
    } else {
        per_group = mf_option_i32(&op->options, f->depth_multiplier, 0);
        if (per_group < 1) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        if ((int64_t)input->dims[3] * per_group != channels) {
            return MF_ERR_BAD_MODEL;
        }
    }
    if (output->dims[0] != input->dims[0] || output->dims[3] != channels ||
        output->dims[1] != mf_conv_out_size(padding, input->dims[1], filter->dims[1], stride_h, dilation_h) ||
        output->dims[2] != mf_conv_out_size(padding, input->dims[2], filter->dims[2], stride_w, dilation_w)) {
        return MF_ERR_BAD_MODEL;
    }
    pad_h = mf_conv_padding(stride_h, dilation_h, input->dims[1], filter->dims[1], output->dims[1]);
    pad_w = mf_conv_padding(stride_w, dilation_w, input->dims[2], filter->dims[2], output->dims[2]);
    if (!affine_short(per_group) || !affine_short(pad_h + 1) || !affine_short(pad_w + 1)) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    head->stride_h = (int16_t)stride_h;
    head->stride_w = (int16_t)stride_w;
    head->dilation_h = (int16_t)dilation_h;
    head->dilation_w = (int16_t)dilation_w;
    head->pad_h = (int16_t)pad_h;
    head->pad_w = (int16_t)pad_w;
    head->channels_per_group = (int16_t)per_group;
    if (op->overlap != NULL) {
        op->overlap->allowed = 1;
        op->overlap->gap = mf_rowwise_overlap_gap(input, output, stride_h, pad_h);
    }
    return MF_OK;
}

mf_status mf_affine_window(const mf_op *op, mf_affine_kind kind, mf_affine_data *head)
{
    int32_t axis;
    memset(head, 0, sizeof *head);
    affine_channels(op, kind, &head->channels, &axis);
    return affine_check_window(op, kind, &affine_options[kind], head);
}

int32_t mf_affine_activation(const mf_op *op, mf_affine_kind kind)
{
    return mf_option_u8(&op->options, affine_options[kind].activation, MF_ACT_NONE);
}

int mf_affine_weights_format_ok(const mf_op *op) { return mf_option_u8(&op->options, FC_WEIGHTS_FORMAT, 0) == 0; }

/* Every per-channel filter scale is finite and not negative (mf_requant_of_scales' domain). */
static int affine_scales_ok(const mf_tensor *filter)
{
    int32_t c;
    for (c = 0; c < filter->quant_count; ++c) {
        const float scale = mf_tensor_scale_at(filter, c);
        if (!(scale >= 0.0f && scale <= 3.4e38f)) {
            return 0;
        }
    }
    return 1;
}

mf_status mf_affine_check(const mf_op *op, mf_affine_kind kind, mf_affine_data *head)
{
    const affine_fields *f = &affine_options[kind];
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    int32_t act_min;
    int32_t act_max;
    int32_t axis;
    mf_status status = affine_check_tensors(op, kind);
    memset(head, 0, sizeof *head);
    if (status == MF_OK && !affine_scales_ok(filter)) {
        status = MF_ERR_UNSUPPORTED_PARAM;
    }
    if (status != MF_OK) {
        return status;
    }
    if (kind == MF_AFFINE_FULLY_CONNECTED) {
        const int32_t depth = filter->dims[1];
        if (depth < 1 || mf_tensor_flat_size(input) % depth != 0 ||
            (int64_t)(mf_tensor_flat_size(input) / depth) * filter->dims[0] != mf_tensor_flat_size(output)) {
            return MF_ERR_BAD_MODEL;
        }
        head->filter_offset = -filter->zero_point;
    } else {
        status = affine_check_window(op, kind, f, head);
        if (status != MF_OK) {
            return status;
        }
    }
    affine_channels(op, kind, &head->channels, &axis);
    head->weights = filter->type == MF_INT4 ? MF_WEIGHTS_INT4 : MF_WEIGHTS_INT8;
    head->input_offset = -input->zero_point;
    head->output_zero_point = output->zero_point;
    status = mf_activation_range_int8(mf_option_u8(&op->options, f->activation, MF_ACT_NONE), output, &act_min, &act_max);
    head->act_min = (int16_t)act_min;
    head->act_max = (int16_t)act_max;
    return status;
}

/* Bytes of a kind's record before its table. */
static size_t affine_record_bytes(mf_affine_kind kind)
{
    return kind == MF_AFFINE_FULLY_CONNECTED ? offsetof(mf_affine_data, channels_per_group) : sizeof(mf_affine_data);
}

size_t mf_affine_plan_table(const mf_op *op, mf_affine_kind kind, mf_affine_data *head, int per_channel)
{
    head->channel_step = (int8_t)(op->inputs[1].quant_count > 1 || per_channel);
    head->table = head->channel_step && !mf_op_data_in_flash(op) ? MF_TABLE_SCRATCH : (int16_t)affine_record_bytes(kind);
    return (head->table == MF_TABLE_SCRATCH ? (size_t)head->channels * sizeof(mf_requant) : 0) +
           mf_sparse_dense_filter_bytes(op, kind);
}

/* Channel c's requantization from the scales. */
static mf_requant affine_requant_at(const mf_op *op, int32_t c)
{
    return mf_requant_of_scales(op->inputs[0].scale, mf_tensor_scale_at(&op->inputs[1], c), op->outputs[0].scale);
}

mf_status mf_affine_store(const mf_op *op, mf_affine_kind kind, const mf_affine_data *head)
{
    const size_t record = affine_record_bytes(kind);
    const int32_t count = head->table == MF_TABLE_SCRATCH ? 0 : head->channel_step ? head->channels : 1;
    mf_affine_data full = *head;
    /* In flash, a sparse filter goes into the record (mf_sparse.h) and the image drops the dense one. */
    const size_t encoded = mf_op_data_in_flash(op) ? mf_sparse_plan(op, kind, &full) : 0;
    uint8_t *data;
    mf_requant *table;
    int32_t c;
    full.weights_at = encoded != 0 ? (int32_t)(record + (size_t)count * sizeof(mf_requant)) : 0;
    data = (uint8_t *)mf_op_data(op, record + (size_t)count * sizeof(mf_requant) + encoded);
    if (data == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    table = (mf_requant *)(void *)(data + record);
    memcpy(data, &full, record);
    for (c = 0; c < count; ++c) {
        table[c] = affine_requant_at(op, c);
    }
    if (encoded != 0) {
        mf_sparse_encode(op, &full, data + full.weights_at);
    }
    return MF_OK;
}

mf_status mf_affine_prepare(const mf_op *op, mf_affine_kind kind, size_t *scratch_bytes)
{
    mf_affine_data head;
    const mf_status status = mf_affine_check(op, kind, &head);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    *scratch_bytes = mf_affine_plan_table(op, kind, &head, 0);
    return mf_affine_store(op, kind, &head);
}

const mf_requant *mf_affine_table(const mf_op *op, const mf_affine_data *data)
{
#ifdef MF_EVAL_LIST /* a prepared firmware: every table is in its record (the image's, in flash) */
    (void)op;
    return mf_affine_record_table(data);
#else
    mf_requant *table = (mf_requant *)op->scratch;
    int32_t c;
    if (data->table != MF_TABLE_SCRATCH) {
        return mf_affine_record_table(data);
    }
    for (c = 0; c < data->channels; ++c) { /* per-tensor weights (a DSP loop's table): one value, copied */
        table[c] = op->inputs[1].quant_count == 1 && c > 0 ? table[0] : affine_requant_at(op, c);
    }
    return table;
#endif
}

void *mf_affine_scratch(const mf_op *op, const mf_affine_data *data)
{
    return (uint8_t *)op->scratch + (data->table == MF_TABLE_SCRATCH ? (size_t)data->channels * sizeof(mf_requant) : 0);
}
