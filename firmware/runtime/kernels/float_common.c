/* Prepare helpers shared by the float32 kernels (mf_float.h). */
#include <float.h>
#include <string.h>

#include "mf_float.h"

mf_status mf_activation_range_float(int32_t activation, mf_float_range *range)
{
    range->act_min = -FLT_MAX;
    range->act_max = FLT_MAX;
    switch (activation) {
    case MF_ACT_NONE:
        return MF_OK;
    case MF_ACT_RELU:
        range->act_min = 0.0f;
        return MF_OK;
    case MF_ACT_RELU6:
        range->act_min = 0.0f;
        range->act_max = 6.0f;
        return MF_OK;
    case MF_ACT_RELU_N1_TO_1:
        range->act_min = -1.0f;
        range->act_max = 1.0f;
        return MF_OK;
    default:
        return MF_ERR_UNSUPPORTED_PARAM;
    }
}

mf_status mf_float_check(const mf_op *op, int32_t min_inputs, int32_t max_inputs)
{
    int32_t i;
    if (op->input_count < min_inputs || op->input_count > max_inputs || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    for (i = 0; i < op->input_count; ++i) {
        if ((i < min_inputs || op->inputs[i].rank >= 0) && op->inputs[i].type != MF_FLOAT32) {
            return MF_ERR_UNSUPPORTED_TYPE;
        }
        if (i < min_inputs && op->inputs[i].rank < 0) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return op->outputs[0].type == MF_FLOAT32 ? MF_OK : MF_ERR_UNSUPPORTED_TYPE;
}

mf_status mf_float_store(const mf_op *op, const void *record, size_t bytes)
{
    void *data = mf_op_data(op, bytes);
    if (data == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    memcpy(data, record, bytes);
    return MF_OK;
}
