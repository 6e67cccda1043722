/*
 * The engine: model validation, memory planning and the interpreter.
 *
 * Arena layout after mf_load: [mf_model][tensor offsets][scratch offsets]
 * [op-data ends][op-data records][activations]. One 32-bit offset per tensor
 * and two per op are kept, plus the records the kernels' prepare filled (mf_op_data); kernels
 * get tensor views rebuilt from the (validated) flatbuffer for each op, so
 * shapes and weights stay in the model. Planning scratch lives where the
 * records and activations will go, so it costs nothing once loading is done:
 * prepare runs twice, once to plan (its records measured, not kept), then
 * again to write the records where planning was.
 */
#include <string.h>

#include "mf_engine.h"
#include "mf_engine_internal.h"
#include "mf_flatbuffer.h"
#include "mf_kernel.h"

#define MF_SCHEMA_VERSION 3u
#define MF_ALIGN 4u
#define MF_MAX_OUTPUTS 4
#define MF_MAX_GRAPH_SIZE 0x7FFF /* tensors and ops, so planning indices fit in int16_t */

/* Schema field ids. */
enum { MODEL_VERSION = 0, MODEL_OPERATOR_CODES = 1, MODEL_SUBGRAPHS = 2, MODEL_BUFFERS = 4 };
enum { SUBGRAPH_TENSORS = 0, SUBGRAPH_INPUTS = 1, SUBGRAPH_OUTPUTS = 2, SUBGRAPH_OPERATORS = 3 };
enum { TENSOR_SHAPE = 0, TENSOR_TYPE = 1, TENSOR_BUFFER = 2, TENSOR_QUANTIZATION = 4 };
enum { QUANT_SCALE = 2, QUANT_ZERO_POINT = 3, QUANT_DIMENSION = 6 };
enum { OP_OPCODE_INDEX = 0, OP_INPUTS = 1, OP_OUTPUTS = 2, OP_BUILTIN_OPTIONS = 4, OP_CUSTOM_OPTIONS = 5 };
enum { OPCODE_DEPRECATED_BUILTIN = 0, OPCODE_CUSTOM_CODE = 1, OPCODE_VERSION = 2, OPCODE_BUILTIN = 3 };
enum { BUFFER_DATA = 0, BUFFER_OFFSET = 1, BUFFER_SIZE = 2 };
enum { BUILTIN_PLACEHOLDER_FOR_GREATER_OP_CODES = 127 };

struct mf_model {
    mf_fb fb;
    mf_fb_vector tensors;
    mf_fb_vector operators;
    mf_fb_vector opcodes;
    mf_fb_vector buffers;
    mf_fb_vector inputs;
    mf_fb_vector outputs;
    uint8_t *activations;     /* right after the op-data records; NULL until planned */
    uint32_t arena_used;      /* 32 bits, as every offset in the arena */
    uint32_t image_choices;   /* mf_load_for_image: the build's choices the records were prepared with */
};

/* Per-tensor planning record, kept in the future activation area during load. */
typedef struct mf_plan_entry {
    int16_t first;   /* first op using the buffer (-1: graph input, live from the start) */
    int16_t last;    /* last op using it */
    int16_t root;    /* tensor whose buffer this one shares (itself unless aliased) */
    int16_t order;   /* placement order (indices of roots, sorted) */
    int16_t overlap; /* input root this (output) buffer may overlap, -1 if none */
    int16_t exact;   /* ...only when input offset - output offset == gap */
    int32_t gap;     /* ...when input offset - output offset >= gap (see mf_overlap) */
} mf_plan_entry;

/* Where prepare takes op-data records from during load: down from `top`, never below `floor`. */
typedef struct mf_op_data_pool {
    uint8_t *floor;
    uint8_t *top;
    uint8_t *end;
    size_t needed;    /* bytes every record asked for, given or not */
    int in_flash;     /* preparing a prepared image (mf_op_data_in_flash) */
    uint32_t choices; /* ...and the build's choices for it (mf_op_image_choices) */
    uint32_t current; /* the record of the op being prepared: bytes from its start to `end`, 0 if none */
    size_t op_start;  /* `needed` when the op being prepared started */
} mf_op_data_pool;

/* An op's scratch offset when it runs inside the next op (a fused pair, kernels/mf_depthwise_fc.h). */
#define MF_FUSED_INTO_NEXT 0xFFFFFFFEu

static size_t mf_align_up(size_t n) { return (n + MF_ALIGN - 1u) & ~(size_t)(MF_ALIGN - 1u); }

/* After mf_model in the arena: per tensor, its offset into the activations or
 * MF_NO_STORAGE; per op, the offset of its scratch buffer in the activations
 * (MF_NO_STORAGE: none), then the bytes from its op-data record to the
 * activations (0: none). */
static uint32_t *mf_tensor_offsets(const mf_model *m)
{
    return (uint32_t *)(void *)((uint8_t *)(uintptr_t)m + mf_align_up(sizeof(mf_model)));
}
static uint32_t *mf_scratch_offsets(const mf_model *m) { return mf_tensor_offsets(m) + m->tensors.count; }
static uint32_t *mf_op_data_ends(const mf_model *m) { return mf_scratch_offsets(m) + m->operators.count; }

/* Op i runs inside op i + 1 (its producer half); op i runs op i - 1 (the consumer half). */
static int mf_runs_in_next(const mf_model *m, uint32_t i) { return mf_scratch_offsets(m)[i] == MF_FUSED_INTO_NEXT; }
static int mf_runs_fused(const mf_model *m, uint32_t i) { return i > 0 && mf_runs_in_next(m, i - 1); }

int mf_op_data_in_flash(const mf_op *op) { return op->pool != NULL && op->pool->in_flash; }

uint32_t mf_op_image_choices(const mf_op *op) { return op->pool != NULL && op->pool->in_flash ? op->pool->choices : 0u; }

size_t mf_op_data_taken(const mf_op *op) { return op->pool != NULL ? op->pool->needed - op->pool->op_start : 0; }

void *mf_op_data(const mf_op *op, size_t bytes)
{
    mf_op_data_pool *pool = op->pool;
    const size_t size = mf_align_up(bytes);
    if (pool == NULL || bytes == 0 || bytes > 0x7FFFFFF0u) {
        return NULL;
    }
    pool->needed += size;
    if ((size_t)(pool->top - pool->floor) < size) {
        return NULL;
    }
    pool->top -= size;
    memset(pool->top, 0, size);
    pool->current = (uint32_t)(pool->end - pool->top);
    return pool->top;
}

size_t mf_type_size(mf_dtype type)
{
    switch (type) {
    case MF_FLOAT32:
    case MF_INT32:
        return 4;
    case MF_INT64:
        return 8;
    case MF_INT16:
        return 2;
    case MF_UINT8:
    case MF_INT8:
    case MF_BOOL:
    case MF_INT4:
        return 1;
    }
    return 0;
}

size_t mf_type_bytes(mf_dtype type, size_t elements)
{
    return type == MF_INT4 ? elements / 2u + elements % 2u : elements * mf_type_size(type);
}

int32_t mf_tensor_flat_size(const mf_tensor *tensor)
{
    int32_t size = 1;
    int32_t i;
    for (i = 0; i < tensor->rank; ++i) {
        size *= tensor->dims[i];
    }
    return size;
}

float mf_tensor_scale_at(const mf_tensor *tensor, int32_t channel)
{
    if (tensor->quant_count > 1) {
        float value;
        memcpy(&value, &tensor->scales[channel], sizeof value);
        return value;
    }
    return tensor->scale;
}

static void mf_set_fault(mf_fault *fault, int32_t op, int32_t tensor, const char *name)
{
    fault->op_index = op;
    fault->tensor_index = tensor;
    fault->name = name;
}

/* The shape of tensor `table` into dims/rank, with its bytes; checks rank, sizes and type. */
static mf_status mf_read_shape(const mf_fb *fb, size_t table, mf_tensor *view, size_t *bytes)
{
    mf_fb_vector shape;
    uint8_t type;
    uint64_t elements = 1;
    size_t elem_size;
    uint32_t i;
    mf_status status = mf_fb_vector_field(fb, table, TENSOR_SHAPE, 4, &shape);
    if (status == MF_OK) {
        status = mf_fb_read_u8(fb, table, TENSOR_TYPE, 0, &type);
    }
    if (status != MF_OK) {
        return status;
    }
    if (shape.count > MF_MAX_DIMS) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    view->type = (mf_dtype)type;
    elem_size = mf_type_size(view->type);
    if (elem_size == 0) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    view->rank = (int32_t)shape.count;
    for (i = 0; i < shape.count; ++i) {
        const int32_t dim = mf_fb_i32(fb, shape.data + 4 * (size_t)i);
        if (dim < 0) {
            return MF_ERR_UNSUPPORTED_PARAM; /* dynamic shapes */
        }
        view->dims[i] = dim;
        elements *= (uint64_t)dim;
        if (elements > 0x7FFFFFFFu / elem_size) {
            return MF_ERR_BAD_MODEL;
        }
    }
    *bytes = mf_type_bytes(view->type, (size_t)elements);
    return MF_OK;
}

/* Constant data of a tensor (NULL, 0 when its buffer is empty). */
static mf_status mf_read_buffer(const mf_model *m, size_t tensor_table, const uint8_t **data, size_t *size)
{
    const mf_fb *fb = &m->fb;
    uint32_t index = 0;
    size_t buffer;
    mf_fb_vector bytes;
    uint64_t offset;
    uint64_t length;
    size_t pos;
    mf_status status = mf_fb_field(fb, tensor_table, TENSOR_BUFFER, 4, &pos);
    *data = NULL;
    *size = 0;
    if (status != MF_OK || pos == 0) {
        return status;
    }
    index = mf_fb_u32(fb, pos);
    if (index == 0) {
        return MF_OK; /* buffer 0 is the schema's empty sentinel */
    }
    status = mf_fb_vector_table(fb, &m->buffers, index, &buffer);
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, buffer, BUFFER_DATA, 1, &bytes);
    }
    if (status == MF_OK) {
        status = mf_fb_read_u64(fb, buffer, BUFFER_OFFSET, &offset);
    }
    if (status == MF_OK) {
        status = mf_fb_read_u64(fb, buffer, BUFFER_SIZE, &length);
    }
    if (status != MF_OK) {
        return status;
    }
    if (offset > 1) { /* data stored after the flatbuffer (models over 2 GB, or by choice) */
        if (offset > fb->size || length > fb->size - offset) {
            return MF_ERR_BAD_MODEL;
        }
        *data = fb->base + offset;
        *size = (size_t)length;
    } else if (bytes.count > 0) {
        *data = fb->base + bytes.data;
        *size = bytes.count;
    }
    return MF_OK;
}

/* Builds the kernel view of tensor `index` (-1: absent optional input). */
static mf_status mf_view(const mf_model *m, int32_t index, mf_tensor *view)
{
    const mf_fb *fb = &m->fb;
    size_t table;
    size_t quant;
    size_t bytes;
    size_t data_size;
    const uint8_t *data;
    mf_status status;
    memset(view, 0, sizeof *view);
    if (index < 0) {
        view->rank = -1;
        return MF_OK;
    }
    status = mf_fb_vector_table(fb, &m->tensors, (uint32_t)index, &table);
    if (status == MF_OK) {
        status = mf_read_shape(fb, table, view, &bytes);
    }
    if (status == MF_OK) {
        status = mf_read_buffer(m, table, &data, &data_size);
    }
    if (status == MF_OK) {
        status = mf_fb_table_field(fb, table, TENSOR_QUANTIZATION, &quant);
    }
    if (status != MF_OK) {
        return status;
    }
    if (data != NULL) {
        if (data_size != bytes || (uintptr_t)data % mf_type_size(view->type) != 0) {
            return MF_ERR_BAD_MODEL;
        }
        view->data = (void *)(uintptr_t)data; /* constants are never written: outputs are checked non-constant */
        view->is_constant = 1;
    } else if (m->activations != NULL && mf_tensor_offsets(m)[index] != MF_NO_STORAGE) {
        view->data = m->activations + mf_tensor_offsets(m)[index];
    }
    if (quant != 0) {
        mf_fb_vector scales;
        mf_fb_vector zero_points;
        int32_t dim = 0;
        status = mf_fb_vector_field(fb, quant, QUANT_SCALE, 4, &scales);
        if (status == MF_OK) {
            status = mf_fb_vector_field(fb, quant, QUANT_ZERO_POINT, 8, &zero_points);
        }
        if (status == MF_OK) {
            status = mf_fb_read_i32(fb, quant, QUANT_DIMENSION, 0, &dim);
        }
        if (status != MF_OK) {
            return status;
        }
        if (scales.count > 0) {
            if (zero_points.count != 0 && zero_points.count != scales.count) {
                return MF_ERR_BAD_MODEL;
            }
            /* quantized_dimension is checked by the kernels that read per-channel scales:
             * converters leave stale values on biases (person_detect has 3 on rank-1 tensors). */
            view->quant_count = (int32_t)scales.count;
            view->quant_dim = dim;
            view->scales = (const float *)(const void *)(fb->base + scales.data);
            view->scale = mf_fb_f32(fb, scales.data);
            if (!(view->scale >= 0.0f && view->scale <= 3.4e38f)) {
                return MF_ERR_BAD_MODEL;
            }
            if (zero_points.count > 0) {
                const int64_t zp = mf_fb_i64(fb, zero_points.data);
                if (zp < -65536 || zp > 65536) { /* beyond every integer type the kernels take */
                    return MF_ERR_BAD_MODEL;
                }
                view->zero_point = (int32_t)zp;
            }
        }
    }
    return MF_OK;
}

/* Tensor index vector of an operator field, each index checked. */
static mf_status mf_op_tensors(const mf_model *m, size_t op, int field, int32_t lowest, mf_fb_vector *vec)
{
    uint32_t i;
    mf_status status = mf_fb_vector_field(&m->fb, op, field, 4, vec);
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < vec->count; ++i) {
        const int32_t index = mf_fb_i32(&m->fb, vec->data + 4 * (size_t)i);
        if (index < lowest || index >= (int32_t)m->tensors.count) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return MF_OK;
}

/* The code of a CUSTOM operator code's kernel, from its custom_code string;
 * MF_ERR_UNSUPPORTED_OP naming the string (or CUSTOM) when none runs it. */
static mf_status mf_custom_code(const mf_fb *fb, size_t opcode, int32_t *builtin, mf_fault *fault)
{
    mf_fb_vector name;
    const mf_status status = mf_fb_vector_field(fb, opcode, OPCODE_CUSTOM_CODE, 1, &name);
    if (status != MF_OK) {
        return status;
    }
    *builtin = mf_custom_op_code(fb->base + name.data, name.count);
    if (*builtin < 0) {
        if (fault != NULL) {
            /* Flatbuffer strings end with a NUL after their bytes: name the op by it when it is there. */
            const int terminated = name.count != 0 && name.data + name.count < fb->size && fb->base[name.data + name.count] == '\0';
            fault->name = terminated ? (const char *)(fb->base + name.data) : "CUSTOM";
        }
        return MF_ERR_UNSUPPORTED_OP;
    }
    return MF_OK;
}

/* The kernel, options and tensor views of operator `index`. */
static mf_status mf_op_views(const mf_model *m, uint32_t index, const mf_kernel **kernel, mf_op *op,
                             mf_tensor *inputs, mf_tensor *outputs, int32_t *builtin, mf_fault *fault)
{
    const mf_fb *fb = &m->fb;
    size_t table;
    size_t opcode;
    uint32_t opcode_index = 0;
    uint8_t deprecated = 0;
    int32_t code = 0;
    mf_fb_vector in;
    mf_fb_vector out;
    uint32_t i;
    size_t pos;
    mf_status status = mf_fb_vector_table(fb, &m->operators, index, &table);
    if (status == MF_OK) {
        status = mf_fb_read_i32(fb, table, OP_OPCODE_INDEX, 0, (int32_t *)&opcode_index);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_table(fb, &m->opcodes, opcode_index, &opcode);
    }
    if (status == MF_OK) {
        status = mf_fb_read_u8(fb, opcode, OPCODE_DEPRECATED_BUILTIN, 0, &deprecated);
    }
    if (status == MF_OK) {
        status = mf_fb_read_i32(fb, opcode, OPCODE_BUILTIN, 0, &code);
    }
    if (status == MF_OK) {
        status = mf_fb_read_i32(fb, opcode, OPCODE_VERSION, 1, &op->version);
    }
    if (status != MF_OK) {
        return status;
    }
    /* The schema keeps codes below 127 in the deprecated int8 field; the larger of the two wins. */
    *builtin = code > (int32_t)(int8_t)deprecated ? code : (int32_t)(int8_t)deprecated;
    if (*builtin == MF_OP_CUSTOM) {
        status = mf_custom_code(fb, opcode, builtin, fault);
        if (status != MF_OK) {
            return status;
        }
    }
    *kernel = mf_find_kernel(*builtin);
    if (*kernel == NULL) { /* a list of float32 kernels only: mf_float_check refuses other types */
        *kernel = mf_find_kernel(MF_FLOAT_KERNEL(*builtin));
    }
    if (*kernel == NULL) {
        if (fault != NULL) {
            fault->name = mf_op_name(*builtin);
        }
        return MF_ERR_UNSUPPORTED_OP;
    }
    status = mf_op_tensors(m, table, OP_INPUTS, -1, &in);
    if (status == MF_OK) {
        status = mf_op_tensors(m, table, OP_OUTPUTS, 0, &out);
    }
    if (status == MF_OK) {
        status = mf_fb_table_field(fb, table, OP_BUILTIN_OPTIONS, &pos);
    }
    if (status != MF_OK) {
        return status;
    }
    if (in.count > MF_MAX_OP_TENSORS || out.count > MF_MAX_OUTPUTS) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    op->options.base = fb->base;
    op->options.size = fb->size;
    op->options.table = pos;
    op->options.custom = NULL;
    op->options.custom_size = 0;
    if (*builtin >= MF_OP_CUSTOM_FIRST) {
        mf_fb_vector custom;
        status = mf_fb_vector_field(fb, table, OP_CUSTOM_OPTIONS, 1, &custom);
        if (status != MF_OK) {
            return status;
        }
        op->options.custom = custom.count != 0 ? fb->base + custom.data : NULL;
        op->options.custom_size = custom.count;
    }
    op->inputs = inputs;
    op->input_count = (int32_t)in.count;
    op->outputs = outputs;
    op->output_count = (int32_t)out.count;
    op->scratch = NULL;
    op->overlap = NULL;
    op->data = NULL;
    op->pool = NULL;
    op->parts = NULL;
    for (i = 0; i < in.count && status == MF_OK; ++i) {
        status = mf_view(m, mf_fb_i32(fb, in.data + 4 * (size_t)i), &inputs[i]);
    }
    for (i = 0; i < out.count && status == MF_OK; ++i) {
        status = mf_view(m, mf_fb_i32(fb, out.data + 4 * (size_t)i), &outputs[i]);
        if (status == MF_OK && outputs[i].is_constant) {
            status = MF_ERR_BAD_MODEL; /* an op may never write into the model */
        }
    }
    if (status == MF_OK && mf_kernel_code(*builtin, op) != *builtin) {
        *kernel = mf_find_kernel(MF_FLOAT_KERNEL(*builtin));
    }
    return status;
}

/* Tensor index of element i of an int32 vector. */
static int32_t mf_index_at(const mf_model *m, const mf_fb_vector *vec, uint32_t i)
{
    return mf_fb_i32(&m->fb, vec->data + 4 * (size_t)i);
}

/* The input and output vectors of operator `index`. */
static mf_status mf_op_vectors(const mf_model *m, uint32_t index, mf_fb_vector *in, mf_fb_vector *out)
{
    size_t table;
    mf_status status = mf_fb_vector_table(&m->fb, &m->operators, index, &table);
    if (status == MF_OK) {
        status = mf_op_tensors(m, table, OP_INPUTS, -1, in);
    }
    return status == MF_OK ? mf_op_tensors(m, table, OP_OUTPUTS, 0, out) : status;
}

/* Whether op i's one output is read by op i + 1 as its input 0 and by nothing else (no other op or input slot,
 * not a graph input or output): then the two may run as one fused op. */
static int mf_feeds_next_alone(const mf_model *m, uint32_t i)
{
    mf_fb_vector in;
    mf_fb_vector out;
    int32_t middle;
    uint32_t j;
    uint32_t k;
    if (i + 1 >= m->operators.count || mf_op_vectors(m, i, &in, &out) != MF_OK || out.count != 1) {
        return 0;
    }
    middle = mf_index_at(m, &out, 0);
    for (k = 0; k < m->outputs.count; ++k) {
        if (mf_index_at(m, &m->outputs, k) == middle) {
            return 0;
        }
    }
    for (k = 0; k < m->inputs.count; ++k) {
        if (mf_index_at(m, &m->inputs, k) == middle) {
            return 0;
        }
    }
    for (j = 0; j < m->operators.count; ++j) {
        if (mf_op_vectors(m, j, &in, &out) != MF_OK) {
            return 0;
        }
        for (k = 0; k < in.count; ++k) {
            if ((mf_index_at(m, &in, k) == middle) != (j == i + 1 && k == 0)) {
                return 0;
            }
        }
    }
    return 1;
}

/* The fused op run at operator `index` (op index - 1 runs inside it), as mf_depthwise_fc.h lays it out: the
 * first op's inputs at 0-2 (absent ones filled in) and its output at outputs[1], this op's inputs at 3-5 and
 * its output at outputs[0]; parts[0] and parts[1] are the two ops. */
static mf_status mf_fused_views(const mf_model *m, uint32_t index, const mf_kernel **kernel, mf_op *op, mf_tensor *inputs,
                                mf_tensor *outputs, mf_op *parts, int32_t *builtin, mf_fault *fault)
{
    const mf_kernel *part_kernel;
    int32_t codes[2];
    mf_fb_vector in;
    mf_fb_vector out;
    int k;
    mf_status status = mf_op_vectors(m, index, &in, &out);
    if (status == MF_OK && (in.count > 3 || out.count != 1)) {
        status = MF_ERR_UNSUPPORTED_OP; /* not the pair mf_depthwise_fc.h runs */
    }
    if (status == MF_OK) {
        status = mf_op_views(m, index - 1, &part_kernel, &parts[0], inputs, outputs + 1, &codes[0], fault);
    }
    if (status == MF_OK && parts[0].input_count > 3) {
        status = MF_ERR_UNSUPPORTED_OP;
    }
    if (status == MF_OK) {
        status = mf_op_views(m, index, &part_kernel, &parts[1], inputs + 3, outputs, &codes[1], fault);
    }
    if (status != MF_OK) {
        return status;
    }
    for (k = 0; k < 2; ++k) {
        if (parts[k].input_count < 3) {
            memset(&inputs[3 * k + 2], 0, sizeof inputs[0]);
            inputs[3 * k + 2].rank = -1; /* an absent bias */
        }
    }
    *builtin = MF_OP_DEPTHWISE_FC;
    *kernel = mf_find_kernel(MF_OP_DEPTHWISE_FC);
    if (*kernel == NULL || codes[0] != MF_OP_DEPTHWISE_CONV_2D || codes[1] != MF_OP_FULLY_CONNECTED ||
        mf_kernel_code(codes[0], &parts[0]) != codes[0] || mf_kernel_code(codes[1], &parts[1]) != codes[1]) {
        return MF_ERR_UNSUPPORTED_OP;
    }
    *op = parts[1];
    memset(&op->options, 0, sizeof op->options);
    op->inputs = inputs;
    op->input_count = 6;
    op->parts = parts;
    return MF_OK;
}

/* Operator `index`'s kernel, op and views: a fused op's at its second op. */
static mf_status mf_run_views(const mf_model *m, uint32_t index, const mf_kernel **kernel, mf_op *op, mf_tensor *inputs,
                              mf_tensor *outputs, mf_op *parts, int32_t *builtin, mf_fault *fault)
{
    return mf_runs_fused(m, index) ? mf_fused_views(m, index, kernel, op, inputs, outputs, parts, builtin, fault)
                                   : mf_op_views(m, index, kernel, op, inputs, outputs, builtin, fault);
}

static void mf_touch(mf_plan_entry *plan, int32_t tensor, int16_t op)
{
    mf_plan_entry *e = &plan[plan[tensor].root];
    if (e->first == INT16_MAX || op < e->first) {
        e->first = op;
    }
    if (op > e->last) {
        e->last = op;
    }
}

/* Runs op `index`'s prepare, its record from `pool`; *scratch: the scratch it asks for, *kernel: its kernel,
 * *constant_input: whether its input 0 is a constant. */
static mf_status mf_prepare_op(const mf_model *m, uint32_t index, mf_op_data_pool *pool, mf_overlap *overlap,
                               size_t *scratch, const mf_kernel **kernel, int *constant_input, mf_fault *fault)
{
    mf_op op;
    mf_op parts[2];
    int32_t builtin;
    mf_tensor inputs[MF_MAX_OP_TENSORS];
    mf_tensor outputs[MF_MAX_OUTPUTS];
    mf_status status;
    *scratch = 0;
    pool->current = 0;
    pool->op_start = pool->needed;
    *constant_input = 0;
    if (mf_runs_in_next(m, index)) {
        *kernel = NULL; /* prepared as part of the next op */
        return MF_OK;
    }
    status = mf_run_views(m, index, kernel, &op, inputs, outputs, parts, &builtin, fault);
    op.overlap = overlap;
    op.pool = pool;
    parts[0].pool = pool;
    parts[1].pool = pool;
    if (status == MF_OK) {
        status = (*kernel)->prepare(&op, scratch);
        *constant_input = op.input_count > 0 && inputs[0].is_constant;
    }
    if (status == MF_ERR_UNSUPPORTED_TYPE && fault != NULL && fault->name[0] == '\0') {
        fault->name = mf_type_name(op.input_count > 0 && inputs[0].rank >= 0 ? (int32_t)inputs[0].type : -1);
    }
    return status;
}

/* Whether op i runs inside op i + 1 (kernels/mf_depthwise_fc.h): it feeds that op alone and the fused kernel
 * takes the pair (its prepare, run here only to measure, does not refuse it as MF_ERR_UNSUPPORTED_OP).
 * Marks op i's scratch offset either way. */
static int mf_fuses_into_next(const mf_model *m, uint32_t i, mf_op_data_pool *pool)
{
    const size_t needed = pool->needed;
    size_t scratch;
    const mf_kernel *kernel;
    int constant_input;
    int fused = !mf_runs_fused(m, i) && mf_feeds_next_alone(m, i);
    mf_scratch_offsets(m)[i] = MF_FUSED_INTO_NEXT;
    fused = fused &&
            mf_prepare_op(m, i + 1, pool, NULL, &scratch, &kernel, &constant_input, NULL) != MF_ERR_UNSUPPORTED_OP;
    pool->needed = needed;
    mf_scratch_offsets(m)[i] = fused ? MF_FUSED_INTO_NEXT : MF_NO_STORAGE;
    return fused;
}

/* Lifetimes of every buffer from the graph, following reshape-like aliases;
 * prepares every op, its records measured in `pool` (which has no room);
 * scratch_bytes[i]: the scratch buffer op i asked for. */
static mf_status mf_lifetimes(const mf_model *m, mf_plan_entry *plan, uint32_t *scratch_bytes, mf_op_data_pool *pool,
                              mf_fault *fault)
{
    const mf_fb *fb = &m->fb;
    uint32_t t;
    uint32_t i;
    mf_status status = MF_OK;
    for (t = 0; t < m->tensors.count; ++t) {
        plan[t].first = INT16_MAX;
        plan[t].last = -1;
        plan[t].root = (int16_t)t;
        plan[t].order = -1;
        plan[t].overlap = -1;
        plan[t].gap = 0;
        plan[t].exact = 0;
    }
    for (i = 0; i < m->operators.count; ++i) {
        mf_scratch_offsets(m)[i] = MF_NO_STORAGE; /* no op fused yet (mf_fuses_into_next) */
    }
    for (i = 0; i < m->inputs.count && status == MF_OK; ++i) {
        const int32_t tensor = mf_index_at(m, &m->inputs, i);
        mf_tensor view;
        status = mf_view(m, tensor, &view);
        if (status == MF_OK && view.is_constant) {
            fault->tensor_index = tensor;
            status = MF_ERR_BAD_MODEL; /* callers write inputs: a constant input would let them write into the model */
        }
        mf_touch(plan, tensor, -1);
    }
    for (i = 0; i < m->operators.count && status == MF_OK; ++i) {
        size_t table;
        mf_fb_vector in;
        mf_fb_vector out;
        uint32_t k;
        size_t scratch = 0;
        const mf_kernel *kernel = NULL;
        int constant_input = 0;
        mf_overlap overlap = {0, 0, 0};
        int fused;
        fault->op_index = (int32_t)i;
        scratch_bytes[i] = 0;
        if (mf_fuses_into_next(m, i, pool)) {
            continue; /* its tensors are the next op's */
        }
        fused = mf_runs_fused(m, i);
        status = mf_prepare_op(m, i, pool, &overlap, &scratch, &kernel, &constant_input, fault);
        if (status == MF_ERR_ARENA_TOO_SMALL && (size_t)(pool->end - pool->top) < pool->needed) {
            status = MF_OK; /* its record is only measured here: mf_write_records writes it */
        }
        if (status != MF_OK) {
            return status;
        }
        if (scratch > 0x7FFFFFFFu) {
            return MF_ERR_UNSUPPORTED_PARAM;
        }
        scratch_bytes[i] = (uint32_t)scratch;
        mf_fb_vector_table(fb, &m->operators, i, &table);
        mf_op_tensors(m, table, OP_INPUTS, -1, &in);
        mf_op_tensors(m, table, OP_OUTPUTS, 0, &out);
        if ((kernel->flags & MF_KERNEL_ALIAS) != 0 && in.count > 0 && out.count > 0 && !constant_input) {
            const int32_t source = mf_index_at(m, &in, 0);
            const int32_t target = mf_index_at(m, &out, 0);
            if (source >= 0 && plan[target].root == target && plan[target].first == INT16_MAX) {
                plan[target].root = plan[source].root;
            }
        }
        if (overlap.allowed && in.count > 0 && out.count > 0 && !constant_input) {
            const int32_t target = mf_index_at(m, &out, 0);
            if (plan[target].root == target) {
                plan[target].overlap = plan[mf_index_at(m, &in, 0)].root;
                plan[target].gap = overlap.gap;
                plan[target].exact = (int16_t)(overlap.exact != 0);
            }
        }
        for (k = 0; k < in.count; ++k) {
            const int32_t index = mf_index_at(m, &in, k);
            if (index >= 0 && !(fused && k == 0)) { /* a fused pair's middle tensor takes no buffer */
                mf_touch(plan, index, (int16_t)i);
            }
        }
        for (k = 0; k < out.count; ++k) {
            mf_touch(plan, mf_index_at(m, &out, k), (int16_t)i);
        }
        if (fused) { /* the first op of the pair runs here */
            mf_fb_vector first_out;
            mf_op_vectors(m, i - 1, &in, &first_out);
            for (k = 0; k < in.count; ++k) {
                if (mf_index_at(m, &in, k) >= 0) {
                    mf_touch(plan, mf_index_at(m, &in, k), (int16_t)i);
                }
            }
        }
    }
    fault->op_index = -1;
    for (i = 0; i < m->outputs.count; ++i) {
        mf_touch(plan, mf_index_at(m, &m->outputs, i), (int16_t)m->operators.count);
    }
    return status;
}

/* Bytes of a non-constant tensor's buffer; 0 for constants. */
static mf_status mf_storage_bytes(const mf_model *m, uint32_t t, size_t *bytes)
{
    mf_tensor view;
    size_t table;
    const uint8_t *data;
    size_t data_size;
    mf_status status = mf_fb_vector_table(&m->fb, &m->tensors, t, &table);
    if (status == MF_OK) {
        status = mf_read_shape(&m->fb, table, &view, bytes);
    }
    if (status == MF_OK) {
        status = mf_read_buffer(m, table, &data, &data_size);
    }
    if (status == MF_OK && data != NULL) {
        *bytes = 0;
    } else if (status == MF_OK && view.type == MF_INT4) {
        status = MF_ERR_UNSUPPORTED_TYPE; /* INT4 is for constant weights: no kernel reads or writes INT4 activations */
    }
    return status;
}

static int mf_overlaps(const mf_plan_entry *a, const mf_plan_entry *b) { return a->first <= b->last && b->first <= a->last; }

/* Whether buffer b at `offset` may coexist with placed buffer o at o_offset. */
static int mf_fits(const mf_plan_entry *plan, const uint32_t *sizes, int16_t b, size_t offset, int16_t o, size_t o_offset)
{
    const mf_plan_entry *pb = &plan[b];
    const mf_plan_entry *po = &plan[o];
    if (!mf_overlaps(pb, po) || offset + mf_align_up(sizes[b]) <= o_offset || o_offset + mf_align_up(sizes[o]) <= offset) {
        return 1;
    }
    /* An op's input and output that meet only at that op may share bytes the kernel allows. */
    if (pb->overlap == o && po->last == pb->first) {
        return pb->exact ? (int64_t)o_offset - (int64_t)offset == pb->gap : (int64_t)o_offset - (int64_t)offset >= pb->gap;
    }
    if (po->overlap == b && pb->last == po->first) {
        return po->exact ? (int64_t)offset - (int64_t)o_offset == po->gap : (int64_t)offset - (int64_t)o_offset >= po->gap;
    }
    return 0;
}

/* Whether buffer order[i] fits at `offset` beside every buffer placed before it. */
static int mf_fits_all(const mf_model *m, const mf_plan_entry *plan, const uint32_t *sizes, int16_t i, size_t offset)
{
    const int16_t b = plan[i].order;
    int16_t j;
    for (j = 0; j < i; ++j) {
        const int16_t o = plan[j].order;
        if (!mf_fits(plan, sizes, b, offset, o, mf_tensor_offsets(m)[o])) {
            return 0;
        }
    }
    return 1;
}

/*
 * Greedy placement (largest buffer first, each at the lowest offset free over
 * its whole lifetime, as TFLM's GreedyMemoryPlanner), where an op's output may
 * also overlap its input by what the kernel allows. Candidate offsets are 0,
 * the end of each placed buffer and the overlap positions. Offsets go into
 * tensor_offsets; returns the activation peak.
 */
static mf_status mf_place(const mf_model *m, mf_plan_entry *plan, const uint32_t *sizes, int16_t count, unsigned strategy,
                          size_t *peak)
{
    const int later_first = (strategy & 1u) != 0;
    const int prefer_pairs = (strategy & 2u) != 0;
    const int outputs_first = (strategy & 4u) != 0;
    int16_t i;
    int16_t j;
    *peak = 0;
    /* Insertion sort of the buffer order by size, then by first use (ascending, or
     * descending when later_first, which puts an op's output before its input). */
    for (i = 1; i < count; ++i) {
        const int16_t key = plan[i].order;
        j = (int16_t)(i - 1);
        while (j >= 0 && (sizes[plan[j].order] < sizes[key] ||
                          (sizes[plan[j].order] == sizes[key] &&
                           (later_first ? plan[plan[j].order].first < plan[key].first
                                        : plan[plan[j].order].first > plan[key].first)))) {
            plan[j + 1].order = plan[j].order;
            --j;
        }
        plan[j + 1].order = key;
    }
    /* Optionally an output that may overlap its (larger) input comes right before it, so the input is placed
     * where the output's overlap allows (mf_overlap's gap above it) before other buffers take those bytes. */
    for (i = 0; i < count && outputs_first; ++i) {
        const int16_t b = plan[i].order;
        for (j = 0; j < i && plan[j].order != plan[b].overlap; ++j) {
        }
        if (j < i) {
            int16_t k;
            for (k = i; k > j; --k) {
                plan[k].order = plan[k - 1].order;
            }
            plan[j].order = b;
        }
    }
    for (i = 0; i < count; ++i) {
        const int16_t b = plan[i].order;
        size_t best = mf_fits_all(m, plan, sizes, i, 0) ? 0 : (size_t)-1;
        int paired = 0;
        for (j = 0; j < i && !(best == 0 && !prefer_pairs) && !paired; ++j) {
            const int16_t o = plan[j].order;
            const size_t o_offset = mf_tensor_offsets(m)[o];
            size_t candidates[2];
            int k;
            candidates[0] = o_offset + mf_align_up(sizes[o]);
            candidates[1] = (size_t)-1;
            if (plan[b].overlap == o && o_offset >= (size_t)mf_align_up((size_t)(plan[b].gap > 0 ? plan[b].gap : 0))) {
                candidates[1] = o_offset - mf_align_up((size_t)(plan[b].gap > 0 ? plan[b].gap : 0));
            } else if (plan[o].overlap == b) {
                candidates[1] = o_offset + mf_align_up((size_t)(plan[o].gap > 0 ? plan[o].gap : 0));
            }
            if (prefer_pairs && candidates[1] != (size_t)-1 && mf_fits_all(m, plan, sizes, i, candidates[1])) {
                best = candidates[1]; /* sit on the partner even when a lower offset is free */
                paired = 1;
            }
            for (k = 0; k < 2 && !paired; ++k) {
                if (candidates[k] < best && mf_fits_all(m, plan, sizes, i, candidates[k])) {
                    best = candidates[k];
                }
            }
        }
        if (best > 0xFFFFFFF0u - mf_align_up(sizes[b])) {
            return MF_ERR_ARENA_TOO_SMALL;
        }
        mf_tensor_offsets(m)[b] = (uint32_t)best;
        if (best + mf_align_up(sizes[b]) > *peak) {
            *peak = best + mf_align_up(sizes[b]);
        }
    }
    return MF_OK;
}

/*
 * Each op's scratch buffer, once the tensors are placed: the lowest offset
 * (0 or the end of a buffer) free of every buffer live during that op only,
 * so a scratch buffer fills a hole of its op (TFLM's scratch buffers live as
 * long as their op too). Offsets go into scratch_offsets; raises *peak.
 */
static void mf_place_scratch(const mf_model *m, const mf_plan_entry *plan, const uint32_t *sizes,
                             const uint32_t *scratch_bytes, int16_t count, size_t *peak)
{
    uint32_t i;
    for (i = 0; i < m->operators.count; ++i) {
        const size_t bytes = mf_align_up(scratch_bytes[i]);
        size_t best = (size_t)-1;
        int16_t j;
        int16_t k;
        if (mf_runs_in_next(m, i)) {
            continue; /* keeps its mark: its scratch is the next op's */
        }
        for (j = -1; j < count && bytes > 0; ++j) {
            const int16_t c = j < 0 ? -1 : plan[j].order;
            const size_t candidate = c < 0 ? 0 : mf_tensor_offsets(m)[c] + mf_align_up(sizes[c]);
            int free = candidate < best;
            for (k = 0; k < count && free; ++k) {
                const int16_t o = plan[k].order;
                const size_t o_offset = mf_tensor_offsets(m)[o];
                free = plan[o].first > (int32_t)i || plan[o].last < (int32_t)i || candidate + bytes <= o_offset ||
                       o_offset + mf_align_up(sizes[o]) <= candidate;
            }
            if (free) {
                best = candidate;
            }
        }
        mf_scratch_offsets(m)[i] = bytes > 0 ? (uint32_t)best : MF_NO_STORAGE;
        if (bytes > 0 && best + bytes > *peak) {
            *peak = best + bytes;
        }
    }
}

static mf_status mf_read_graph(mf_model *m)
{
    const mf_fb *fb = &m->fb;
    size_t root;
    size_t subgraph;
    mf_fb_vector subgraphs;
    uint32_t version = 0;
    uint32_t i;
    mf_status status = mf_fb_table_at(fb, 0, &root);
    if (status == MF_OK) {
        status = mf_fb_read_i32(fb, root, MODEL_VERSION, 0, (int32_t *)&version);
    }
    if (status == MF_OK && version != MF_SCHEMA_VERSION) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, root, MODEL_OPERATOR_CODES, 4, &m->opcodes);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, root, MODEL_BUFFERS, 4, &m->buffers);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, root, MODEL_SUBGRAPHS, 4, &subgraphs);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_table(fb, &subgraphs, 0, &subgraph);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, subgraph, SUBGRAPH_TENSORS, 4, &m->tensors);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, subgraph, SUBGRAPH_OPERATORS, 4, &m->operators);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, subgraph, SUBGRAPH_INPUTS, 4, &m->inputs);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(fb, subgraph, SUBGRAPH_OUTPUTS, 4, &m->outputs);
    }
    if (status != MF_OK) {
        return status;
    }
    if (m->tensors.count > MF_MAX_GRAPH_SIZE || m->operators.count >= MF_MAX_GRAPH_SIZE) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    for (i = 0; i < m->inputs.count; ++i) {
        if (mf_index_at(m, &m->inputs, i) < 0 || mf_index_at(m, &m->inputs, i) >= (int32_t)m->tensors.count) {
            return MF_ERR_BAD_MODEL;
        }
    }
    for (i = 0; i < m->outputs.count; ++i) {
        if (mf_index_at(m, &m->outputs, i) < 0 || mf_index_at(m, &m->outputs, i) >= (int32_t)m->tensors.count) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return MF_OK;
}

/* Prepares every op again, its record taken from `pool` (room for them all, below the activations). */
static mf_status mf_write_records(const mf_model *m, mf_op_data_pool *pool, mf_fault *fault)
{
    uint32_t i;
    for (i = 0; i < m->operators.count; ++i) {
        size_t scratch;
        const mf_kernel *kernel;
        int constant_input;
        const mf_status status = mf_prepare_op(m, i, pool, NULL, &scratch, &kernel, &constant_input, fault);
        if (status != MF_OK) {
            fault->op_index = (int32_t)i;
            return status;
        }
        mf_op_data_ends(m)[i] = pool->current;
    }
    return MF_OK;
}

/*
 * Plans every tensor's storage and every op's scratch in `work` (the arena
 * after the tables). The planning records sit where activations will go, so
 * the arena needed is the larger of them and the records and activations;
 * on success tensor_offsets, scratch_offsets, the records and arena_used are
 * final.
 */
static mf_status mf_plan(mf_model *m, uint8_t *work, size_t work_size, int in_flash, mf_fault *fault)
{
    const uint32_t slots = m->tensors.count;
    const size_t plan_bytes = mf_align_up(slots * sizeof(mf_plan_entry));
    const size_t planning_bytes = plan_bytes + (slots + m->operators.count) * sizeof(uint32_t);
    const size_t header = (size_t)(work - (uint8_t *)m);
    mf_plan_entry *plan = (mf_plan_entry *)(void *)work;
    uint32_t *sizes = (uint32_t *)(void *)(work + plan_bytes);
    uint32_t *scratch_bytes = sizes + slots; /* per op */
    mf_op_data_pool pool;
    size_t peak = 0;
    size_t used;
    int16_t count = 0;
    uint32_t t;
    mf_status status;
    if (planning_bytes > work_size) {
        fault->arena_needed = header + planning_bytes;
        return MF_ERR_ARENA_TOO_SMALL;
    }
    pool.floor = work + planning_bytes; /* no room: records are measured only */
    pool.end = pool.floor;
    pool.top = pool.end;
    pool.needed = 0;
    pool.current = 0;
    pool.in_flash = in_flash;
    pool.choices = m->image_choices;
    status = mf_lifetimes(m, plan, scratch_bytes, &pool, fault);
    for (t = 0; t < m->tensors.count && status == MF_OK; ++t) {
        size_t bytes = 0;
        mf_tensor_offsets(m)[t] = MF_NO_STORAGE;
        status = mf_storage_bytes(m, t, &bytes);
        sizes[t] = (uint32_t)bytes;
        if (status == MF_ERR_UNSUPPORTED_TYPE) {
            mf_set_fault(fault, -1, (int32_t)t, mf_type_name(MF_INT4));
        }
    }
    if (status != MF_OK) {
        return status;
    }
    for (t = 0; t < m->tensors.count; ++t) { /* an alias root holds its largest view */
        const int16_t root = plan[t].root;
        if (root != (int16_t)t && sizes[t] > sizes[root]) {
            sizes[root] = sizes[t];
        }
    }
    for (t = 0; t < slots; ++t) {
        if (plan[t].root == (int16_t)t && plan[t].last >= plan[t].first && sizes[t] > 0) {
            plan[count++].order = (int16_t)t;
        }
    }
    /* Eight strategies (two tie-break orders, with or without keeping overlap
     * partners together, outputs that may overlap their input placed by size
     * or right before it), each followed by the ops' scratch; the smallest plan wins and is
     * placed again. */
    {
        unsigned strategy;
        unsigned best_strategy = 0;
        size_t best_peak = (size_t)-1;
        for (strategy = 0; strategy < 8 && status == MF_OK; ++strategy) {
            status = mf_place(m, plan, sizes, count, strategy, &peak);
            if (status == MF_OK) {
                mf_place_scratch(m, plan, sizes, scratch_bytes, count, &peak);
            }
            if (status == MF_OK && peak < best_peak) {
                best_peak = peak;
                best_strategy = strategy;
            }
        }
        if (status == MF_OK) {
            status = mf_place(m, plan, sizes, count, best_strategy, &peak);
        }
        if (status == MF_OK) {
            mf_place_scratch(m, plan, sizes, scratch_bytes, count, &peak);
        }
    }
    if (status != MF_OK) {
        return status;
    }
    for (t = 0; t < m->tensors.count; ++t) {
        if (plan[t].root != (int16_t)t) {
            mf_tensor_offsets(m)[t] = mf_tensor_offsets(m)[plan[t].root];
        }
    }
    used = header + (pool.needed + peak > planning_bytes ? pool.needed + peak : planning_bytes);
    if (pool.needed + peak > work_size) {
        fault->arena_needed = used;
        return MF_ERR_ARENA_TOO_SMALL;
    }
    m->arena_used = (uint32_t)used; /* within the arena, whose offsets are 32-bit */
    pool.floor = work;
    pool.end = work + pool.needed;
    pool.top = pool.end;
    status = mf_write_records(m, &pool, fault);
    m->activations = pool.end;
    return status;
}

/* mf_load, the records prepared for the interpreter's arena or (in_flash) for a prepared image made with `choices`. */
static mf_status mf_load_home(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, mf_model **model,
                              mf_fault *fault, int in_flash, uint32_t choices)
{
    mf_fault local_fault;
    uint8_t *start;
    size_t usable;
    size_t header;
    mf_model *m;
    mf_status status;
    if (fault == NULL) {
        fault = &local_fault;
    }
    mf_set_fault(fault, -1, -1, "");
    fault->arena_needed = 0;
    if (model != NULL) {
        *model = NULL;
    }
    if (model_data == NULL || arena == NULL || model == NULL || ((uintptr_t)model_data % 8u) != 0) {
        return MF_ERR_BAD_ARGUMENT;
    }
    start = (uint8_t *)arena + (mf_align_up((uintptr_t)arena) - (uintptr_t)arena);
    usable = arena_size - (size_t)(start - (uint8_t *)arena);
    if (arena_size < (size_t)(start - (uint8_t *)arena) + sizeof(mf_model)) {
        fault->arena_needed = sizeof(mf_model) + MF_ALIGN;
        return MF_ERR_ARENA_TOO_SMALL;
    }
    m = (mf_model *)(void *)start;
    memset(m, 0, sizeof *m);
    m->fb.base = model_data;
    m->fb.size = model_size;
    m->image_choices = choices;
    status = mf_read_graph(m);
    if (status != MF_OK) {
        return status;
    }
    header = mf_align_up(sizeof(mf_model)) + mf_align_up(m->tensors.count * sizeof(uint32_t)) +
             2u * m->operators.count * sizeof(uint32_t);
    if (header > usable) {
        fault->arena_needed = header + (size_t)(start - (uint8_t *)arena);
        return MF_ERR_ARENA_TOO_SMALL;
    }
    status = mf_plan(m, start + header, usable - header, in_flash, fault);
    if (status == MF_ERR_ARENA_TOO_SMALL && fault->arena_needed != 0) {
        fault->arena_needed += (size_t)(start - (uint8_t *)arena);
    }
    if (status != MF_OK) {
        m->activations = NULL;
        return status;
    }
    m->arena_used += (uint32_t)(start - (uint8_t *)arena);
    *model = m;
    return MF_OK;
}

mf_status mf_load(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, mf_model **model,
                  mf_fault *fault)
{
    return mf_load_home(model_data, model_size, arena, arena_size, model, fault, 0, 0u);
}

mf_status mf_load_for_image(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, mf_model **model,
                            mf_fault *fault, uint32_t choices)
{
    return mf_load_home(model_data, model_size, arena, arena_size, model, fault, 1, choices);
}

uint32_t mf_model_op_count(const mf_model *model) { return model->operators.count; }

uint32_t mf_model_tensor_count(const mf_model *model) { return model->tensors.count; }

uint32_t mf_model_scratch_bytes(const mf_model *model, uint32_t index)
{
    uint8_t none;
    mf_op_data_pool pool = {&none, &none, &none, 0, 1, 0, 0, 0}; /* no room: prepare stops at its record, scratch known */
    size_t bytes;
    const mf_kernel *kernel;
    int constant_input;
    pool.choices = model->image_choices;
    (void)mf_prepare_op(model, index, &pool, NULL, &bytes, &kernel, &constant_input, NULL);
    return (uint32_t)bytes;
}

uint32_t mf_model_scratch_offset(const mf_model *model, uint32_t index)
{
    return mf_runs_in_next(model, index) ? MF_NO_STORAGE : mf_scratch_offsets(model)[index];
}

int mf_model_op_runs_in_next(const mf_model *model, uint32_t index) { return mf_runs_in_next(model, index); }

int32_t mf_model_io_tensor(const mf_model *model, int output, uint32_t index)
{
    const mf_fb_vector *io = output ? &model->outputs : &model->inputs;
    return index < io->count ? mf_index_at(model, io, index) : -1;
}

mf_status mf_model_tensor(const mf_model *model, int32_t index, mf_tensor *view, uint32_t *offset)
{
    const mf_status status = mf_view(model, index, view);
    *offset = index >= 0 && (uint32_t)index < model->tensors.count ? mf_tensor_offsets(model)[index] : MF_NO_STORAGE;
    return status;
}

mf_status mf_model_op(const mf_model *model, uint32_t index, mf_op *op, mf_tensor *inputs, mf_tensor *outputs,
                      int32_t *builtin, int32_t *tensor_indices)
{
    const mf_kernel *kernel;
    mf_op parts[2];
    mf_fb_vector in;
    mf_fb_vector out;
    uint32_t k;
    uint32_t first = 0; /* a fused op: its first op's inputs, then its own (mf_fused_views) */
    mf_status status = mf_run_views(model, index, &kernel, op, inputs, outputs, parts, builtin, NULL);
    op->parts = NULL;
    if (status == MF_OK && mf_runs_fused(model, index)) {
        status = mf_op_vectors(model, index - 1, &in, &out);
        for (k = 0; status == MF_OK && k < 3; ++k) {
            tensor_indices[k] = k < in.count ? mf_index_at(model, &in, k) : -1;
        }
        first = 3;
    }
    if (status == MF_OK) {
        status = mf_op_vectors(model, index, &in, &out);
    }
    for (k = 0; status == MF_OK && k < (first != 0 ? 3u : in.count); ++k) {
        tensor_indices[first + k] = k < in.count ? mf_index_at(model, &in, k) : -1;
    }
    for (k = 0; status == MF_OK && k < out.count; ++k) {
        tensor_indices[(uint32_t)op->input_count + k] = mf_index_at(model, &out, k);
    }
    if (status == MF_OK && mf_op_data_ends(model)[index] != 0) {
        op->data = model->activations - mf_op_data_ends(model)[index];
    }
    return status;
}

uint32_t mf_model_record_bytes(const mf_model *model, uint32_t index)
{
    const uint32_t *ends = mf_op_data_ends(model);
    uint32_t next = 0; /* the record taken after this one (lower in memory) ends where this one starts */
    uint32_t k;
    if (ends[index] == 0) {
        return 0;
    }
    for (k = 0; k < model->operators.count; ++k) {
        if (ends[k] < ends[index] && ends[k] > next) {
            next = ends[k];
        }
    }
    return ends[index] - next;
}

mf_status mf_invoke(mf_model *model)
{
    uint32_t i;
    if (model == NULL || model->activations == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    for (i = 0; i < model->operators.count; ++i) {
        const mf_kernel *kernel;
        mf_op op;
        mf_op parts[2];
        int32_t builtin;
        mf_tensor inputs[MF_MAX_OP_TENSORS];
        mf_tensor outputs[MF_MAX_OUTPUTS];
        mf_status status;
        if (mf_runs_in_next(model, i)) {
            continue; /* the next op runs it */
        }
        status = mf_run_views(model, i, &kernel, &op, inputs, outputs, parts, &builtin, NULL);
        if (status != MF_OK) {
            return status;
        }
        if (mf_scratch_offsets(model)[i] != MF_NO_STORAGE) {
            op.scratch = model->activations + mf_scratch_offsets(model)[i];
        }
        if (mf_op_data_ends(model)[i] != 0) {
            op.data = model->activations - mf_op_data_ends(model)[i];
        }
        status = kernel->eval(&op);
        if (status != MF_OK) {
            return status;
        }
    }
    return MF_OK;
}

size_t mf_input_count(const mf_model *model) { return model != NULL ? model->inputs.count : 0; }

size_t mf_output_count(const mf_model *model) { return model != NULL ? model->outputs.count : 0; }

static mf_status mf_io_info(const mf_model *m, const mf_fb_vector *io, size_t index, mf_tensor_info *info)
{
    mf_tensor view;
    size_t table;
    mf_fb_vector shape;
    size_t bytes;
    int32_t tensor;
    mf_status status;
    if (m == NULL || info == NULL || index >= io->count) {
        return MF_ERR_BAD_ARGUMENT;
    }
    tensor = mf_index_at(m, io, (uint32_t)index);
    status = mf_view(m, tensor, &view);
    if (status == MF_OK) {
        status = mf_fb_vector_table(&m->fb, &m->tensors, (uint32_t)tensor, &table);
    }
    if (status == MF_OK) {
        status = mf_fb_vector_field(&m->fb, table, TENSOR_SHAPE, 4, &shape);
    }
    if (status == MF_OK) {
        status = mf_read_shape(&m->fb, table, &view, &bytes);
    }
    if (status != MF_OK) {
        return status;
    }
    info->data = view.data;
    info->dims = (const int32_t *)(const void *)(m->fb.base + shape.data);
    info->rank = view.rank;
    info->type = view.type;
    info->scale = view.scale;
    info->zero_point = view.zero_point;
    info->bytes = bytes;
    return MF_OK;
}

mf_status mf_input(const mf_model *model, size_t index, mf_tensor_info *info)
{
    return model != NULL ? mf_io_info(model, &model->inputs, index, info) : MF_ERR_BAD_ARGUMENT;
}

mf_status mf_output(const mf_model *model, size_t index, mf_tensor_info *info)
{
    return model != NULL ? mf_io_info(model, &model->outputs, index, info) : MF_ERR_BAD_ARGUMENT;
}

size_t mf_arena_used(const mf_model *model) { return model != NULL ? model->arena_used : 0; }

const char *mf_status_name(mf_status status)
{
    static const char *const names[MF_STATUS_COUNT] = {
        "MF_OK", "MF_ERR_BAD_ARGUMENT", "MF_ERR_BAD_MODEL", "MF_ERR_UNSUPPORTED_OP",
        "MF_ERR_UNSUPPORTED_TYPE", "MF_ERR_UNSUPPORTED_PARAM", "MF_ERR_ARENA_TOO_SMALL",
    };
    return (unsigned)status < MF_STATUS_COUNT ? names[status] : "MF_ERR_UNKNOWN";
}
