/*
 * The kernel interface, TFLM's shape: `prepare` checks the op once and fills
 * its op-data record (geometry, activation range, zero points, per-channel
 * requantization, the variant chosen); `eval` only reads that record and the
 * tensors' data. A kernel sees its op as tensor views built from the model on
 * the fly, plus its builtin options table read in place (prepare only for
 * kernels that keep an op-data record).
 *
 * Adding an op: write kernels/<op>.c defining <prefix>_prepare and
 * <prefix>_eval, and add one MF_KERNEL line to kernels/mf_kernel_list.h.
 * Optimized variants (e.g. Cortex-M DSP) replace a file with one of the same
 * name; the portable C kernel stays the reference they are tested against.
 */
#ifndef MF_KERNEL_H
#define MF_KERNEL_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"
#include "mf_fixedpoint.h"

#define MF_MAX_DIMS 6
#define MF_MAX_OP_TENSORS 16 /* inputs (or outputs) per op */

/* One tensor as a kernel sees it. */
typedef struct mf_tensor {
    void *data;                  /* NULL in prepare unless constant; NULL if absent */
    int32_t dims[MF_MAX_DIMS];
    int32_t rank;                /* -1 for an absent optional input (index -1) */
    mf_dtype type;
    int32_t is_constant;         /* data lives in the model (weights, shapes, axes) */
    float scale;                 /* first (or only) quantization scale, 0 if none */
    int32_t zero_point;          /* first (or only) zero point */
    int32_t quant_count;         /* 0: not quantized, 1: per tensor, N: per channel */
    int32_t quant_dim;           /* channel axis for per-channel quantization */
    const float *scales;         /* quant_count scales, in place in the model */
} mf_tensor;

/* A builtin options table, read in place; accessors return the schema default
 * for an absent field or an absent table. */
typedef struct mf_options {
    const uint8_t *base;
    size_t size;
    size_t table; /* 0: no options table */
    const uint8_t *custom; /* custom ops: their custom_options bytes (a FlexBuffer), in place; else NULL */
    size_t custom_size;
} mf_options;

/* Set by prepare when output 0 may share memory with input 0: the kernel never
 * overwrites input it still has to read as long as
 * (input offset - output offset) >= gap bytes, or, with `exact`, only when
 * the difference is exactly gap (gap 0 and exact: in place). Leaving it
 * untouched keeps the two apart. */
typedef struct mf_overlap {
    int32_t allowed;
    int32_t gap;
    int32_t exact;
} mf_overlap;

/* One operator, as passed to prepare and eval. */
typedef struct mf_op {
    const mf_tensor *inputs;
    int32_t input_count;
    const mf_tensor *outputs; /* kernels write through outputs[i].data */
    int32_t output_count;
    mf_options options;
    int32_t version;
    void *scratch;            /* eval only: the scratch_bytes prepare asked for, else NULL */
    mf_overlap *overlap;      /* prepare only, may be NULL: see mf_overlap */
    const void *data;         /* eval only: the op-data record prepare filled, NULL if none */
    struct mf_op_data_pool *pool; /* prepare only: where mf_op_data takes the record from */
    const struct mf_op *parts; /* prepare only: a fused op's two ops (mf_engine.c), NULL for the others */
} mf_op;

/* Prepare only, once per op (a fused op's kernel: once per part, then its
 * own): a zeroed op-data record of `bytes` (rounded up to 4), which eval gets
 * as op->data; each call's bytes lie just below the previous call's. Records hold 32-bit words
 * (int32_t, or mf_requant) and no pointers: the same bytes serve the
 * interpreter (records in the arena) and prepared images (records in flash).
 * NULL when the arena is too small: prepare then returns MF_ERR_ARENA_TOO_SMALL
 * (as its last step, so its scratch and overlap are already set). */
void *mf_op_data(const mf_op *op, size_t bytes);

/* Prepare only: the bytes of records this op took so far (its parts' too), given or only measured. */
size_t mf_op_data_taken(const mf_op *op);

/* Prepare only: 1 when the records go into a prepared image (flash, where
 * tables cost no RAM), 0 in the interpreter (records in the arena). */
int mf_op_data_in_flash(const mf_op *op);

/* Prepare only: the choices a prepared image's build made (MF_CHOICE_* bits,
 * mf_prepare_image's `choices`), 0 in the interpreter. */
uint32_t mf_op_image_choices(const mf_op *op);
/* Narrow 3 x 3 depthwise layers take the channel-major loop instead of the NHWC one
 * (kernels/dsp/depthwise_conv.c), so a firmware links one loop family: the
 * build's choice under a code budget (mcuforge.firmware.code_budget). */
#define MF_CHOICE_NARROW_DEPTHWISE_CHANNEL_MAJOR 1u

/* Checks types, shapes and options at load; sets *scratch_bytes (0 if none). */
typedef mf_status (*mf_prepare_fn)(const mf_op *op, size_t *scratch_bytes);
typedef mf_status (*mf_eval_fn)(const mf_op *op);

#define MF_KERNEL_ALIAS 1u /* output 0 shares input 0's buffer (reshape-like); eval does nothing */

typedef struct mf_kernel {
    int32_t builtin_code;
    uint32_t flags;
    mf_prepare_fn prepare;
    mf_eval_fn eval;
} mf_kernel;

/* Builtin operator codes (TFLite schema BuiltinOperator) of the ops with kernels. */
enum {
    MF_OP_ADD = 0,
    MF_OP_AVERAGE_POOL_2D = 1,
    MF_OP_CONCATENATION = 2,
    MF_OP_CONV_2D = 3,
    MF_OP_DEPTHWISE_CONV_2D = 4,
    MF_OP_DEQUANTIZE = 6,
    MF_OP_FULLY_CONNECTED = 9,
    MF_OP_LOGISTIC = 14,
    MF_OP_MAX_POOL_2D = 17,
    MF_OP_MUL = 18,
    MF_OP_RELU = 19,
    MF_OP_RELU6 = 21,
    MF_OP_RESHAPE = 22,
    MF_OP_SOFTMAX = 25,
    MF_OP_TANH = 28,
    MF_OP_PAD = 34,
    MF_OP_TRANSPOSE = 39,
    MF_OP_MEAN = 40,
    MF_OP_SQUEEZE = 43,
    MF_OP_STRIDED_SLICE = 45,
    MF_OP_EXPAND_DIMS = 70,
    MF_OP_QUANTIZE = 114,
    MF_OP_HARD_SWISH = 117
};

/* How an affine op's (CONV_2D, DEPTHWISE_CONV_2D, FULLY_CONNECTED) filter is
 * stored, resolved in prepare into its op-data record. */
typedef enum mf_weights_format {
    MF_WEIGHTS_INT8 = 0,       /* dense int8, the model's tensor */
    MF_WEIGHTS_INT4 = 1,       /* packed int4, the model's tensor */
    MF_WEIGHTS_SPARSE_2_4 = 2, /* prepared images: two int8 values and their 2-bit positions per group of four */
    MF_WEIGHTS_BITMAP = 3,     /* prepared images: a bitmap of the nonzero weights, then their int8 values */
    MF_WEIGHTS_SPARSE_2_4_INT4 = 4 /* prepared images: 2:4 of an INT4 filter, two 4-bit values a byte */
} mf_weights_format;
/* Fused ops (mf_engine.c runs two graph ops as one): codes past every builtin and custom op. */
enum { MF_OP_DEPTHWISE_FC = 2000 }; /* kernels/mf_depthwise_fc.h */

/* Custom ops with kernels get codes from MF_OP_CUSTOM_FIRST on, in the order
 * of mf_custom_op_names (mf_names.c); the reader maps an operator code's
 * custom_code string to them. Each name after MF_OP_ is the custom_code. */
enum {
    MF_OP_CUSTOM = 32,
    MF_OP_CUSTOM_FIRST = 1000,
    MF_OP_LceQuantize = MF_OP_CUSTOM_FIRST,
    MF_OP_LceBconv2d = 1001,
    MF_OP_LceDequantize = 1002
};

/* The code of the custom op named by `name` (`length` bytes, no NUL needed), -1 if none. */
int32_t mf_custom_op_code(const uint8_t *name, size_t length);

/* Schema ActivationFunctionType values used by fused activations. */
enum { MF_ACT_NONE = 0, MF_ACT_RELU = 1, MF_ACT_RELU_N1_TO_1 = 2, MF_ACT_RELU6 = 3 };
/* Schema Padding values. */
enum { MF_PADDING_SAME = 0, MF_PADDING_VALID = 1 };

/* The registry: the kernel for a builtin code, NULL if none. */
const mf_kernel *mf_find_kernel(int32_t builtin_code);

/* The registry key of an op's float32 kernel: its builtin code with this bit
 * set (builtin codes stay below it). Prepared images store the key they run. */
#define MF_FLOAT_KERNEL(code) ((code) | 0x10000)

/* The key of the kernel that runs `op` of builtin `code`: the float32 kernel
 * when input 0 is float32 and the list has one, else the builtin's own. */
static inline int32_t mf_kernel_code(int32_t code, const mf_op *op)
{
    return op->input_count > 0 && op->inputs[0].type == MF_FLOAT32 && mf_find_kernel(MF_FLOAT_KERNEL(code)) != NULL
               ? MF_FLOAT_KERNEL(code)
               : code;
}

/* A prepared image's kernel key: the registry key (below bit 20) and the eval
 * variant prepare chose (0: the kernel's own eval, which picks one at run time). */
#define MF_EVAL_KEY(code, variant) ((int32_t)((uint32_t)(code) | (uint32_t)(variant) << 20))
#define MF_EVAL_CODE(key) ((key) & 0xFFFFF)
/* The affine kernels' eval variants (kernels/mf_eval_variants.h). */
enum { MF_EVAL_DENSE = 1, MF_EVAL_FOLDED = 2, MF_EVAL_SPARSE = 3, MF_EVAL_INT4 = 4 };

/* Options accessors (field = schema field id, in declaration order from 0). */
int32_t mf_option_i32(const mf_options *options, int field, int32_t default_value);
int32_t mf_option_u8(const mf_options *options, int field, int32_t default_value); /* ubyte/byte/bool/enum */
float mf_option_f32(const mf_options *options, int field, float default_value);

/* Element count of a view (1 for rank 0). */
int32_t mf_tensor_flat_size(const mf_tensor *tensor);
/* Bytes per element of a type (INT4: 1, the byte a pair shares), 0 for unsupported types. */
size_t mf_type_size(mf_dtype type);
/* Bytes of `elements` values of a type (INT4: two a byte, rounded up). */
size_t mf_type_bytes(mf_dtype type, size_t elements);
/* Per-channel (or per-tensor when quant_count == 1) scale of channel c. */
float mf_tensor_scale_at(const mf_tensor *tensor, int32_t channel);

/* TFLM CalculateActivationRangeQuantized for an int8 output. */
mf_status mf_activation_range_int8(int32_t activation, const mf_tensor *output, int32_t *act_min, int32_t *act_max);

/* TFLM ComputeOutSize / ComputePadding for SAME and VALID padding. */
int32_t mf_conv_out_size(int32_t padding, int32_t in_size, int32_t filter_size, int32_t stride, int32_t dilation);
int32_t mf_conv_padding(int32_t stride, int32_t dilation, int32_t in_size, int32_t filter_size, int32_t out_size);

/* The mf_overlap gap of a kernel that writes a 4-D NHWC output row by row
 * (all of row y before row y + 1) reading only input rows from
 * y * stride_h - pad_h on. */
int32_t mf_rowwise_overlap_gap(const mf_tensor *input, const mf_tensor *output, int32_t stride_h, int32_t pad_h);

/* The kernels built in: every op by default; a firmware that runs known models
 * can pass -DMF_KERNEL_LIST='"my_kernels.h"' (same format) so only their
 * kernels are linked, as TFLM's op resolver does. */
#ifndef MF_KERNEL_LIST
#define MF_KERNEL_LIST "kernels/mf_kernel_list.h"
#endif

/* Declarations of every kernel in the list. */
#define MF_KERNEL(code, prefix, flags)                                   \
    mf_status prefix##_prepare(const mf_op *op, size_t *scratch_bytes); \
    mf_status prefix##_eval(const mf_op *op);
#include MF_KERNEL_LIST
#undef MF_KERNEL
#define MF_EVAL_VARIANT(code, variant, function) mf_status function(const mf_op *op);
#include "kernels/mf_eval_variants.h"
#undef MF_EVAL_VARIANT

#endif /* MF_KERNEL_H */
