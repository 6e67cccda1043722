/* Helpers shared by kernels: fused activation ranges and convolution geometry, as TFLM computes them. */
#include <math.h>

#include "mf_kernel.h"

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
        *act_min = mf_max_i32(INT8_MIN, zero_point + (int32_t)roundf(0.0f / scale));
        return MF_OK;
    case MF_ACT_RELU6:
        *act_min = mf_max_i32(INT8_MIN, zero_point + (int32_t)roundf(0.0f / scale));
        *act_max = mf_min_i32(INT8_MAX, zero_point + (int32_t)roundf(6.0f / scale));
        return MF_OK;
    case MF_ACT_RELU_N1_TO_1:
        *act_min = mf_max_i32(INT8_MIN, zero_point + (int32_t)roundf(-1.0f / scale));
        *act_max = mf_min_i32(INT8_MAX, zero_point + (int32_t)roundf(1.0f / scale));
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
