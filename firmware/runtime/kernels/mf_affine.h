/* CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED share one prologue: the
 * checks eval relies on, the geometry, the fused activation range and the
 * requantization of each output channel, computed once in prepare into one
 * op-data record that both kernel sets (portable and DSP) read.
 *
 * Per-channel requantization tables (8 bytes a channel) go where they cost
 * least: after the record in a prepared image (flash); in the interpreter at
 * the start of the op's scratch, filled at eval by integer arithmetic
 * (mf_requant_of_scales), because 8 bytes a channel in the arena would cost
 * person_detect 22 KB. */
#ifndef MF_AFFINE_H
#define MF_AFFINE_H

#include "mf_kernel.h"

typedef enum mf_affine_kind { MF_AFFINE_CONV, MF_AFFINE_DEPTHWISE, MF_AFFINE_FULLY_CONNECTED } mf_affine_kind;

/* mf_affine_data.table when the per-channel requantization is at the start of
 * the op's scratch, filled at eval (the interpreter's per-channel weights). */
#define MF_TABLE_SCRATCH (-1)

/* The three kernels' op-data record: fixed-size integer fields only (see
 * mf_op_data). Conv and depthwise records are the whole struct; a fully
 * connected one ends before the window. The requantization follows the record
 * (one for all, or one per channel) unless it is in the scratch. */
typedef struct mf_affine_data {
    int32_t input_offset;      /* minus the input zero point */
    int32_t filter_offset;     /* minus the filter zero point (fully connected) */
    int32_t output_zero_point;
    int32_t channels;          /* output channels */
    int16_t act_min, act_max;
    int8_t variant;            /* the eval path prepare chose: 0 is the portable loop, others the kernel set's */
    int8_t channel_step;       /* 1: the table has one per output channel; 0: one for all */
    int16_t table;             /* bytes from the record's start to its requantization, or MF_TABLE_SCRATCH */
    int16_t weights;           /* mf_weights_format of the filter */
    int16_t bias_folded;       /* 1: the encoded weights start with each channel's bias + input offset x weight sum */
    int32_t weights_at;        /* sparse formats and folded biases: bytes from the record's start to them (mf_sparse.h) */
    /* Conv and depthwise only: */
    int16_t channels_per_group; /* conv: output channels per filter group; depthwise: the depth multiplier */
    int16_t stride_h, stride_w, dilation_h, dilation_w, pad_h, pad_w;
    int16_t ring_slots;        /* DSP 3 x 3 depthwise (MFD_DW_3X3): ring rows per channel (mfd_depthwise.h); else 0 */
} mf_affine_data;

/* Prepare: checks the op and fills *head but `variant` (0) and the table's place (and,
 * for conv and depthwise, the op's mf_overlap: the output is written row by row). */
mf_status mf_affine_check(const mf_op *op, mf_affine_kind kind, mf_affine_data *head);

/* Prepare, for kernels of other types (float32): the window of conv and depthwise
 * alone (strides, dilations, padding, channels, the output shape, the mf_overlap),
 * into a zeroed *head; no type or quantization check. */
mf_status mf_affine_window(const mf_op *op, mf_affine_kind kind, mf_affine_data *head);

/* The op's fused activation (schema ActivationFunctionType) from its kind's options. */
int32_t mf_affine_activation(const mf_op *op, mf_affine_kind kind);

/* FULLY_CONNECTED: weights in the default layout (weights_format DEFAULT), the only one run. */
int mf_affine_weights_format_ok(const mf_op *op);

/* Prepare: decides where the requantization goes, one per channel when the
 * weights are per channel or `per_channel` asks for it (the DSP loops index
 * it by channel); returns the scratch bytes that takes (kernel scratch goes after). */
size_t mf_affine_plan_table(const mf_op *op, mf_affine_kind kind, mf_affine_data *head, int per_channel);

/* Prepare, its last step: the op-data record, with *head and the requantization. */
mf_status mf_affine_store(const mf_op *op, mf_affine_kind kind, const mf_affine_data *head);

/* The whole prepare of the portable kernels: check, table, store. */
mf_status mf_affine_prepare(const mf_op *op, mf_affine_kind kind, size_t *scratch_bytes);

/* Eval: the requantization table (index it by channel times channel_step). */
const mf_requant *mf_affine_table(const mf_op *op, const mf_affine_data *data);

/* Eval: the kernel's own scratch, after the table's. */
void *mf_affine_scratch(const mf_op *op, const mf_affine_data *data);

/* Eval, records with folded biases (prepared images, whose tables are in the
 * record): the requantization table and the folded biases. */
static inline const mf_requant *mf_affine_record_table(const mf_affine_data *data)
{
    return (const mf_requant *)(const void *)((const uint8_t *)data + data->table);
}

static inline const int32_t *mf_affine_folded(const mf_affine_data *data)
{
    return (const int32_t *)(const void *)((const uint8_t *)data + data->weights_at);
}

/* Whether eval reads input `k` (weights and bias may live in the record instead). */
static inline int mf_affine_reads_input(const mf_affine_data *data, int32_t k)
{
    const int sparse = data->weights == MF_WEIGHTS_SPARSE_2_4 || data->weights == MF_WEIGHTS_BITMAP ||
                       data->weights == MF_WEIGHTS_SPARSE_2_4_INT4;
    return !((k == 1 && sparse) || (k == 2 && data->bias_folded));
}

/* The DSP kernel set's loops (mf_affine_data.variant; 0: the portable loop). */
enum { MFD_CONV_GEMM = 1 };
enum { MFD_DW_CHANNELS = 1, MFD_DW_ONE_INPUT_CHANNEL = 2, MFD_DW_3X3 = 3, MFD_DW_3X3_NHWC = 4 };
enum { MFD_FC_PAIRS = 1 };
/* A kernel key's variant for a dense loop of a kernel set (mf_eval_variants.h). */
#define MF_EVAL_LOOP(loop) (MF_EVAL_DENSE | (loop) << 4)
/* ... and for a depthwise 2:4 filter expanded for a dense loop (mf_sparse_run_expanded). */
#define MF_EVAL_SPARSE_LOOP(loop) (MF_EVAL_SPARSE | (loop) << 4)

/* The eval variant (mf_eval_variants.h) that runs a record: a sparse filter's,
 * INT4 weights', a dense fully connected filter with folded biases, else the
 * kernel set's dense loop. The kernels' own evals dispatch on it; prepared
 * images store it in the op's kernel key. */
static inline int32_t mf_affine_eval_variant(mf_affine_kind kind, const mf_affine_data *data)
{
    if (!mf_affine_reads_input(data, 1)) {
        return MF_EVAL_SPARSE;
    }
    if (data->weights == MF_WEIGHTS_INT4) {
        return MF_EVAL_INT4;
    }
    return kind == MF_AFFINE_FULLY_CONNECTED && data->bias_folded ? MF_EVAL_FOLDED : MF_EVAL_DENSE;
}

/* The taps t of one window axis with origin + dilation * t inside [0, size): [*first, *end). */
static inline void mf_taps_inside(int32_t origin, int32_t dilation, int32_t size, int32_t taps, int32_t *first,
                                  int32_t *end)
{
    *first = origin >= 0 ? 0 : (-origin + dilation - 1) / dilation;
    *end = origin >= size ? 0 : (size - origin - 1) / dilation + 1;
    *end = *end < taps ? *end : taps;
}

/* The int8 output value of an accumulator (bias included). */
static inline int8_t mf_affine_output(const mf_affine_data *data, mf_requant q, int32_t acc)
{
    const int32_t value = mf_wrap_add(mf_requantize(acc, q), data->output_zero_point);
    return (int8_t)mf_clamp_i32(value, data->act_min, data->act_max);
}

#endif /* MF_AFFINE_H */
