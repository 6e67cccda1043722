/* The prepared requantization (mf_affine.h) as the DSP helpers take it:
 * mfd_requant has mf_requant's layout (multiplier, left shift, right shift). */
#ifndef DSP_AFFINE_H
#define DSP_AFFINE_H

#include "../mf_affine.h"
#include "mfd_gemm.h"

typedef char dsp_requant_layout_matches[(sizeof(mfd_requant) == sizeof(mf_requant) &&
                                         offsetof(mfd_requant, left) == offsetof(mf_requant, left) &&
                                         offsetof(mfd_requant, right) == offsetof(mf_requant, right))
                                            ? 1
                                            : -1];

/* The requantization table (mf_affine_table) as mfd_requant. */
static inline const mfd_requant *dsp_requant_table(const mf_op *op, const mf_affine_data *data)
{
    return (const mfd_requant *)(const void *)mf_affine_table(op, data);
}

/* One requantization as mfd_requant. */
static inline mfd_requant dsp_requant(mf_requant q)
{
    mfd_requant r;
    r.multiplier = q.multiplier;
    r.left = q.left;
    r.right = q.right;
    return r;
}

/* The column builder's view of a conv-like op: input and filter sizes, the
 * record's window and input offset (f_c: channels per column). */
static inline void dsp_patch_window(mfd_patch *patch, const mf_op *op, const mf_affine_data *data, int32_t in_c, int32_t f_c)
{
    patch->in_h = op->inputs[0].dims[1];
    patch->in_w = op->inputs[0].dims[2];
    patch->in_c = in_c;
    patch->f_h = op->inputs[1].dims[1];
    patch->f_w = op->inputs[1].dims[2];
    patch->f_c = f_c;
    patch->stride_h = data->stride_h;
    patch->stride_w = data->stride_w;
    patch->pad_h = data->pad_h;
    patch->pad_w = data->pad_w;
    patch->dilation_h = data->dilation_h;
    patch->dilation_w = data->dilation_w;
    patch->offset = data->input_offset;
}

#endif /* DSP_AFFINE_H */
