/*
 * The kernel registry, one line per op: MF_KERNEL(builtin code, function
 * prefix, flags). Included by mf_kernel.h (declarations) and registry.c (the
 * table). No include guard on purpose: it is expanded once per use.
 */
MF_KERNEL(MF_OP_AVERAGE_POOL_2D, mf_average_pool, 0u)
MF_KERNEL(MF_OP_CONV_2D, mf_conv, 0u)
MF_KERNEL(MF_OP_DEPTHWISE_CONV_2D, mf_depthwise_conv, 0u)
MF_KERNEL(MF_OP_DEQUANTIZE, mf_dequantize, 0u)
MF_KERNEL(MF_OP_FULLY_CONNECTED, mf_fully_connected, 0u)
MF_KERNEL(MF_OP_MAX_POOL_2D, mf_max_pool, 0u)
MF_KERNEL(MF_OP_RESHAPE, mf_reshape, MF_KERNEL_ALIAS)
MF_KERNEL(MF_OP_SOFTMAX, mf_softmax, 0u)
MF_KERNEL(MF_OP_SQUEEZE, mf_reshape, MF_KERNEL_ALIAS)
MF_KERNEL(MF_OP_EXPAND_DIMS, mf_reshape, MF_KERNEL_ALIAS)
MF_KERNEL(MF_OP_QUANTIZE, mf_quantize, 0u)
MF_KERNEL(MF_OP_ADD, mf_add, 0u)
MF_KERNEL(MF_OP_MUL, mf_mul, 0u)
MF_KERNEL(MF_OP_CONCATENATION, mf_concatenation, 0u)
MF_KERNEL(MF_OP_PAD, mf_pad, 0u)
MF_KERNEL(MF_OP_MEAN, mf_mean, 0u)
MF_KERNEL(MF_OP_LOGISTIC, mf_logistic, 0u)
MF_KERNEL(MF_OP_TANH, mf_tanh, 0u)
MF_KERNEL(MF_OP_RELU, mf_relu, 0u)
MF_KERNEL(MF_OP_RELU6, mf_relu6, 0u)
MF_KERNEL(MF_OP_HARD_SWISH, mf_hard_swish, 0u)
MF_KERNEL(MF_OP_STRIDED_SLICE, mf_strided_slice, 0u)
MF_KERNEL(MF_OP_TRANSPOSE, mf_transpose, 0u)
/* float32 kernels, chosen for ops whose input 0 is float32 (mf_kernel_code); QUANTIZE
 * (float32 in), DEQUANTIZE (float32 out) and the shape ops above run every type. */
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_CONV_2D), mf_conv_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_DEPTHWISE_CONV_2D), mf_depthwise_conv_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_FULLY_CONNECTED), mf_fully_connected_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_AVERAGE_POOL_2D), mf_average_pool_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_MAX_POOL_2D), mf_max_pool_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_SOFTMAX), mf_softmax_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_ADD), mf_add_float, 0u)
MF_KERNEL(MF_FLOAT_KERNEL(MF_OP_MUL), mf_mul_float, 0u)
