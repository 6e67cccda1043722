/* The float32 kernels (kernels/<op>_float.c): TFLM's float reference kernels
 * (reference_ops), each output computed with the same loop and accumulation
 * order, so results are identical bit for bit. That holds only when the
 * compiler keeps every a * b + c as a rounded product then a rounded sum: the
 * engine is built with -ffp-contract=off (GCC fuses them into VFMA on
 * Cortex-M4F otherwise). The registry keys them MF_FLOAT_KERNEL(builtin code);
 * the engine picks them for ops whose input 0 is float32 (mf_kernel_code). */
#ifndef MF_FLOAT_H
#define MF_FLOAT_H

#include "mf_kernel.h"

/* TFLM ActivationFunctionWithMinMax: std::min(std::max(x, lo), hi), NaN passing through. */
static inline float mf_clamp_float(float x, float lo, float hi)
{
    const float low = x < lo ? lo : x;
    return hi < low ? hi : low;
}

/* The op-data record of the float kernels with a fused activation and no window. */
typedef struct mf_float_range {
    float act_min, act_max;
} mf_float_range;

/* TFLM CalculateActivationRange<float>: NONE is [lowest, max], so an infinity comes out as +-FLT_MAX. */
mf_status mf_activation_range_float(int32_t activation, mf_float_range *range);

/* Every one of the op's tensors float32 (absent optional inputs aside), `inputs` inputs and one output. */
mf_status mf_float_check(const mf_op *op, int32_t min_inputs, int32_t max_inputs);

/* Prepare's last step: the record of `bytes` holding `record`. */
mf_status mf_float_store(const mf_op *op, const void *record, size_t bytes);

#endif /* MF_FLOAT_H */
