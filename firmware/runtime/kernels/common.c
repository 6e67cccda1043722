/* Helpers shared by kernels: fused activation ranges and convolution geometry, as TFLM computes them. */
#include <math.h>

#include "mf_kernel.h"

/* TFLM's zero_point + round(f / scale); saturated far outside int8 so no input overflows. */
static int32_t quantize_bound(float f, float scale, int32_t zero_point)
{
    float q = roundf(f / scale);
    q = q > 1e9f ? 1e9f : (q < -1e9f ? -1e9f : q);
    return zero_point + (q == q ? (int32_t)q : 0);
}

mf_status mf_activation_range_int8(int32_t activation, const mf_tensor *output, int32_t *act_min, int32_t *act_max)
{
    const float scale = output->scale;
    const int32_t zero_point = output->zero_point;
    *act_min = INT8_MIN;
    *act_max = INT8_MAX;
    switch (activation) {
    case MF_ACT_NONE:
        return MF_OK;
    case MF_ACT_RELU:
        *act_min = mf_max_i32(INT8_MIN, quantize_bound(0.0f, scale, zero_point));
        return MF_OK;
    case MF_ACT_RELU6:
        *act_min = mf_max_i32(INT8_MIN, quantize_bound(0.0f, scale, zero_point));
        *act_max = mf_min_i32(INT8_MAX, quantize_bound(6.0f, scale, zero_point));
        return MF_OK;
    case MF_ACT_RELU_N1_TO_1:
        *act_min = mf_max_i32(INT8_MIN, quantize_bound(-1.0f, scale, zero_point));
        *act_max = mf_min_i32(INT8_MAX, quantize_bound(1.0f, scale, zero_point));
        return MF_OK;
    default:
        return MF_ERR_UNSUPPORTED_PARAM;
    }
}

int32_t mf_conv_out_size(int32_t padding, int32_t in_size, int32_t filter_size, int32_t stride, int32_t dilation)
{
    const int64_t effective_filter = ((int64_t)filter_size - 1) * dilation + 1;
    if (stride <= 0) {
        return 0;
    }
    if (padding == MF_PADDING_SAME) {
        return (int32_t)(((int64_t)in_size + stride - 1) / stride);
    }
    return (int32_t)(((int64_t)in_size + stride - effective_filter) / stride);
}

int32_t mf_conv_padding(int32_t stride, int32_t dilation, int32_t in_size, int32_t filter_size, int32_t out_size)
{
    const int64_t effective_filter = ((int64_t)filter_size - 1) * dilation + 1;
    const int64_t padding = (((int64_t)out_size - 1) * stride + effective_filter - in_size) / 2;
    return padding > 0 ? (int32_t)padding : 0;
}

int32_t mf_rowwise_overlap_gap(const mf_tensor *input, const mf_tensor *output, int32_t stride_h, int32_t pad_h)
{
    const int64_t in_row = (int64_t)input->dims[2] * input->dims[3] * (int64_t)mf_type_size(input->type);
    const int64_t out_row = (int64_t)output->dims[2] * output->dims[3] * (int64_t)mf_type_size(output->type);
    int64_t gap = 0;
    int32_t b;
    for (b = 0; b < output->dims[0]; ++b) {
        int32_t y;
        for (y = 0; y < output->dims[1]; ++y) {
            const int64_t first_row = mf_max_i32(0, y * stride_h - pad_h);
            const int64_t written_end = ((int64_t)b * output->dims[1] + y + 1) * out_row;
            const int64_t still_needed = ((int64_t)b * input->dims[1] + first_row) * in_row;
            if (written_end - still_needed > gap) {
                gap = written_end - still_needed;
            }
        }
    }
    return gap > 0x7FFFFFFF ? 0x7FFFFFFF : (int32_t)gap;
}
