/* The window of AVERAGE_POOL_2D and MAX_POOL_2D (Pool2DOptions), checked once
 * for the int8 kernels (pooling.c) and the float32 ones (pooling_float.c). */
#ifndef MF_POOL_H
#define MF_POOL_H

#include "mf_kernel.h"

enum { MF_POOL_ACTIVATION = 5 }; /* Pool2DOptions field of the fused activation */

typedef struct mf_pool_window {
    int32_t stride_h, stride_w, filter_h, filter_w, pad_h, pad_w;
} mf_pool_window;

/* Prepare: strides, filter and padding from the options, the 4-D shapes they imply (TFLM ComputePadding). */
mf_status mf_pool_window_check(const mf_op *op, mf_pool_window *window);

#endif /* MF_POOL_H */
