/* DEPTHWISE_CONV_2D with a 2:4 filter in a prepared image's record (kernels/mf_sparse.h): the
 * filter is expanded into the scratch and the kernel set's dense loop runs it, so the output is
 * the dense kernel's bit for bit; flash holds 5/8 of the filter. */
#include "mf_sparse.h"

mf_status mf_depthwise_conv_eval_sparse(const mf_op *op) { return mf_sparse_run_expanded(op, mf_depthwise_conv_eval_dense); }
