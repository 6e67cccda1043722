/* RESHAPE, SQUEEZE and EXPAND_DIMS: the output is the input's bytes under another
 * shape. The planner gives both the same buffer, so eval copies only when the
 * input is a constant (its bytes stay in the model). */
#include <string.h>

#include "mf_kernel.h"

static mf_status reshape_check(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    if (op->input_count < 1 || op->input_count > 2 || op->output_count != 1 || input->rank < 0) {
        return MF_ERR_BAD_MODEL;
    }
    if (input->type != output->type) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (mf_tensor_flat_size(input) != mf_tensor_flat_size(output)) {
        return MF_ERR_BAD_MODEL;
    }
    return MF_OK;
}

mf_status mf_reshape_prepare(const mf_op *op, size_t *scratch_bytes)
{
    *scratch_bytes = 0;
    return reshape_check(op);
}

mf_status mf_reshape_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    mf_status status = reshape_check(op);
    if (status == MF_OK && op->outputs[0].data != input->data) {
        memmove(op->outputs[0].data, input->data, (size_t)mf_tensor_flat_size(input) * mf_type_size(input->type));
    }
    return status;
}
