/* The prepared-image writer (host builds only; mf_prepared.h has the format):
 * loads the model with the engine itself, so the same prepare and planner
 * decide everything, then copies what eval reads into one image. */
#include <stdio.h>
#include <string.h>

#include "mf_engine_internal.h"
#include "mf_prepare.h"
#include "mf_prepared.h"
#include "kernels/mf_affine.h"
#include "kernels/mf_depthwise_fc.h"

typedef struct mf_writer {
    uint8_t *out; /* NULL: only measuring */
    size_t cap;
    size_t pos;
} mf_writer;

static void mf_put32(mf_writer *w, uint32_t value)
{
    if (w->out != NULL && w->pos + 4u <= w->cap) {
        memcpy(w->out + w->pos, &value, sizeof value);
    }
    w->pos += 4u;
}

static void mf_put_bytes(mf_writer *w, size_t at, const void *bytes, size_t size)
{
    if (w->out != NULL && at + size <= w->cap && size > 0) {
        memcpy(w->out + at, bytes, size);
    }
}

static size_t mf_round_up(size_t n, size_t to) { return (n + to - 1u) / to * to; }

static uint16_t mf_u16_at(const uint8_t *base, size_t pos)
{
    uint16_t value;
    memcpy(&value, base + pos, sizeof value);
    return value;
}

/*
 * A copy of an op's options table with its vtable (vtable at 0, table after
 * it), so the options accessors read it as they read the model; its bytes,
 * 0 when the op has none. Only inline scalar fields are meaningful in the copy:
 * kernels read no vectors or strings from options.
 */
static mf_status mf_options_copy(const mf_options *options, mf_writer *w, size_t at, size_t *bytes, uint32_t *table)
{
    int32_t soffset;
    int64_t vtable;
    uint16_t vtable_size;
    uint16_t table_size;
    *bytes = 0;
    *table = 0;
    if (options->table == 0) {
        return MF_OK;
    }
    memcpy(&soffset, options->base + options->table, sizeof soffset);
    vtable = (int64_t)options->table - soffset;
    if (vtable < 0 || (uint64_t)vtable + 4u > options->size) {
        return MF_ERR_BAD_MODEL;
    }
    vtable_size = mf_u16_at(options->base, (size_t)vtable);
    table_size = mf_u16_at(options->base, (size_t)vtable + 2u);
    if ((uint64_t)vtable + vtable_size > options->size || options->table + table_size > options->size || table_size < 4u) {
        return MF_ERR_BAD_MODEL;
    }
    *table = (uint32_t)mf_round_up(vtable_size, 4u);
    *bytes = *table + table_size;
    soffset = (int32_t)*table;
    mf_put_bytes(w, at, options->base + vtable, vtable_size);
    mf_put_bytes(w, at + *table, options->base + options->table, table_size);
    mf_put_bytes(w, at + *table, &soffset, sizeof soffset);
    return MF_OK;
}

/* Bytes of a tensor's data. */
static size_t mf_view_bytes(const mf_tensor *view) { return mf_type_bytes(view->type, (size_t)mf_tensor_flat_size(view)); }

/* The data section's layout is computed as it is written: records and
 * options in op order, then constants (8-byte aligned) in tensor order. */
typedef struct mf_layout {
    size_t data;       /* start of the data section in the image */
    size_t cursor;     /* next free byte in the data section */
} mf_layout;

/* The affine kind of a registry key's kernel, -1 for the others (float32 ones included: their records differ). */
static int mf_affine_kind_of(int32_t kernel)
{
    return kernel == MF_OP_CONV_2D ? MF_AFFINE_CONV
           : kernel == MF_OP_DEPTHWISE_CONV_2D ? MF_AFFINE_DEPTHWISE
           : kernel == MF_OP_FULLY_CONNECTED ? MF_AFFINE_FULLY_CONNECTED
                                              : -1;
}

/* An op's kernel key: its registry key and, for an affine op, the eval variant its record names
 * (for a dense filter, with the kernel set's loop: MF_EVAL_LOOP). */
static int32_t mf_eval_key(int32_t kernel, const void *record)
{
    const int kind = mf_affine_kind_of(kernel);
    const mf_affine_data *data = (const mf_affine_data *)record;
    int32_t variant;
    if (kernel == MF_OP_DEPTHWISE_FC) {
        return MF_EVAL_KEY(kernel, mf_depthwise_fc_variant((const mf_depthwise_fc_data *)record));
    }
    if (kind < 0 || record == NULL) {
        return kernel;
    }
    variant = mf_affine_eval_variant((mf_affine_kind)kind, data);
    if (variant == MF_EVAL_SPARSE && kind == MF_AFFINE_DEPTHWISE) { /* expanded for the dense loop: its loop's */
        return MF_EVAL_KEY(kernel, MF_EVAL_SPARSE_LOOP(data->variant));
    }
    return MF_EVAL_KEY(kernel, variant == MF_EVAL_DENSE ? MF_EVAL_LOOP(data->variant) : variant);
}

/* The ops section; with `layout`, also writes each op's record and options into the data section.
 * An op that runs inside the next (a fused pair) is left out. */
static mf_status mf_write_ops(const mf_model *m, mf_writer *w, mf_layout *layout)
{
    uint32_t i;
    for (i = 0; i < mf_model_op_count(m); ++i) {
        mf_tensor inputs[MF_MAX_OP_TENSORS];
        mf_tensor outputs[MF_MAX_OP_TENSORS];
        int32_t indices[2 * MF_MAX_OP_TENSORS];
        mf_op op;
        int32_t builtin;
        size_t options_bytes;
        uint32_t options_table;
        const uint32_t record_bytes = mf_model_record_bytes(m, i);
        const size_t record_at = layout->cursor;
        size_t options_at;
        int32_t k;
        mf_status status;
        if (mf_model_op_runs_in_next(m, i)) {
            continue;
        }
        status = mf_model_op(m, i, &op, inputs, outputs, &builtin, indices);
        if (status != MF_OK) {
            return status;
        }
        for (k = 0; k < op.input_count && op.data == NULL; ++k) {
            if (inputs[k].quant_count > 1) {
                return MF_ERR_UNSUPPORTED_PARAM; /* per-channel scales are not in images: only records carry them */
            }
        }
        mf_put_bytes(w, layout->data + record_at, op.data, record_bytes);
        options_at = mf_round_up(record_at + record_bytes, 4u);
        status = mf_options_copy(&op.options, w, layout->data + options_at, &options_bytes, &options_table);
        if (status != MF_OK) {
            return status;
        }
        layout->cursor = mf_round_up(options_at + options_bytes, 4u);
        mf_put32(w, (uint32_t)mf_eval_key(mf_kernel_code(builtin, &op), op.data)); /* a float32 op's own kernel */
        mf_put32(w, (uint32_t)op.input_count);
        mf_put32(w, (uint32_t)op.output_count);
        mf_put32(w, (uint32_t)record_at);
        mf_put32(w, record_bytes);
        mf_put32(w, (uint32_t)options_at);
        mf_put32(w, (uint32_t)options_bytes);
        mf_put32(w, options_table);
        mf_put32(w, mf_model_scratch_offset(m, i));
        for (k = 0; k < op.input_count + op.output_count; ++k) {
            mf_put32(w, (uint32_t)indices[k]);
        }
    }
    return MF_OK;
}

/* The activation area: the end of the last tensor or of an op's scratch. */
static uint32_t mf_activation_bytes(const mf_model *m)
{
    size_t end = 0;
    uint32_t t;
    for (t = 0; t < mf_model_op_count(m); ++t) {
        const uint32_t offset = mf_model_scratch_offset(m, t);
        size_t scratch_end;
        if (offset == MF_NO_STORAGE) {
            continue;
        }
        scratch_end = offset + mf_round_up(mf_model_scratch_bytes(m, t), 4u); /* runs the op's prepare again: once */
        end = scratch_end > end ? scratch_end : end;
    }
    for (t = 0; t < mf_model_tensor_count(m); ++t) {
        mf_tensor view;
        uint32_t offset;
        if (mf_model_tensor(m, (int32_t)t, &view, &offset) == MF_OK && offset != MF_NO_STORAGE && !view.is_constant &&
            offset + mf_round_up(mf_view_bytes(&view), 4u) > end) {
            end = offset + mf_round_up(mf_view_bytes(&view), 4u);
        }
    }
    return (uint32_t)mf_round_up(end, 4u);
}

/* Whether some op's eval reads constant `tensor`: an affine op whose record
 * holds its sparse filter (and folded biases) no longer reads those tensors. */
static int mf_constant_read(const mf_model *m, int32_t tensor)
{
    uint32_t i;
    for (i = 0; i < mf_model_op_count(m); ++i) {
        mf_tensor inputs[MF_MAX_OP_TENSORS];
        mf_tensor outputs[MF_MAX_OP_TENSORS];
        int32_t indices[2 * MF_MAX_OP_TENSORS];
        mf_op op;
        int32_t builtin;
        int32_t kernel;
        int affine;
        int32_t k;
        if (mf_model_op_runs_in_next(m, i)) {
            continue;
        }
        if (mf_model_op(m, i, &op, inputs, outputs, &builtin, indices) != MF_OK) {
            return 1;
        }
        kernel = mf_kernel_code(builtin, &op); /* float32 kernels keep records of their own */
        affine = mf_affine_kind_of(kernel) >= 0;
        for (k = 0; k < op.input_count; ++k) {
            if (indices[k] == tensor &&
                (kernel == MF_OP_DEPTHWISE_FC ? mf_depthwise_fc_reads_input((const mf_depthwise_fc_data *)op.data, k)
                 : !affine || op.data == NULL || mf_affine_reads_input((const mf_affine_data *)op.data, k))) {
                return 1;
            }
        }
    }
    return 0;
}

/* The tensors section; constants are written into the data section from layout->cursor on. */
static mf_status mf_write_tensors(const mf_model *m, mf_writer *w, mf_layout *layout)
{
    uint32_t t;
    for (t = 0; t < mf_model_tensor_count(m); ++t) {
        mf_tensor view;
        uint32_t offset;
        uint32_t where = MF_WHERE_NONE;
        uint32_t bits;
        int32_t d;
        mf_status status = mf_model_tensor(m, (int32_t)t, &view, &offset);
        if (status != MF_OK) {
            return status;
        }
        if (view.is_constant && !mf_constant_read(m, (int32_t)t)) {
            offset = 0; /* stored in a record instead (mf_sparse.h) */
        } else if (view.is_constant) {
            layout->cursor = mf_round_up(layout->cursor, 8u);
            mf_put_bytes(w, layout->data + layout->cursor, view.data, mf_view_bytes(&view));
            where = MF_WHERE_CONSTANT;
            offset = (uint32_t)layout->cursor;
            layout->cursor += mf_view_bytes(&view);
        } else if (offset != MF_NO_STORAGE) {
            where = MF_WHERE_ARENA;
        } else {
            offset = 0;
        }
        mf_put32(w, (uint32_t)view.type);
        mf_put32(w, (uint32_t)view.rank);
        for (d = 0; d < MF_MAX_DIMS; ++d) {
            mf_put32(w, d < view.rank ? (uint32_t)view.dims[d] : 0u);
        }
        mf_put32(w, (uint32_t)view.zero_point);
        memcpy(&bits, &view.scale, sizeof bits);
        mf_put32(w, bits);
        mf_put32(w, where | (uint32_t)(view.quant_count > 1 ? 1 : view.quant_count) << 8);
        mf_put32(w, offset);
    }
    return MF_OK;
}

mf_status mf_prepare_image(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, uint32_t choices,
                           uint8_t *out, size_t out_size, size_t *image_bytes, mf_fault *fault)
{
    mf_model *m;
    mf_writer w;
    mf_writer count;
    mf_layout layout;
    uint32_t header[MF_IMAGE_HEADER_WORDS];
    uint32_t i;
    size_t ops;
    size_t ops_bytes;
    size_t tensors;
    size_t io;
    mf_status status = mf_load_for_image(model_data, model_size, arena, arena_size, &m, fault, choices);
    if (status != MF_OK || image_bytes == NULL) {
        return status != MF_OK ? status : MF_ERR_BAD_ARGUMENT;
    }
    if (out != NULL) {
        memset(out, 0, out_size); /* alignment gaps are zeros: the same model gives the same bytes */
    }
    /* Section sizes first: a measuring pass over the ops. */
    count.out = NULL;
    count.cap = 0;
    count.pos = 0;
    layout.data = 0;
    layout.cursor = 0;
    status = mf_write_ops(m, &count, &layout);
    if (status != MF_OK) {
        return status;
    }
    ops = 4u * MF_IMAGE_HEADER_WORDS;
    ops_bytes = count.pos;
    tensors = ops + ops_bytes;
    io = tensors + 4u * MF_TENSOR_WORDS * mf_model_tensor_count(m);
    w.out = out;
    w.cap = out_size;
    w.pos = ops;
    layout.data = mf_round_up(io + 4u * (mf_input_count(m) + mf_output_count(m)), 8u);
    layout.cursor = 0;
    status = mf_write_ops(m, &w, &layout);
    if (status == MF_OK) {
        status = mf_write_tensors(m, &w, &layout);
    }
    if (status != MF_OK) {
        return status;
    }
    for (i = 0; i < mf_input_count(m); ++i) {
        mf_put32(&w, (uint32_t)mf_model_io_tensor(m, 0, i));
    }
    for (i = 0; i < mf_output_count(m); ++i) {
        mf_put32(&w, (uint32_t)mf_model_io_tensor(m, 1, i));
    }
    *image_bytes = mf_round_up(layout.data + layout.cursor, 8u);
    memset(header, 0, sizeof header);
    header[MF_IMAGE_MAGIC_WORD] = MF_IMAGE_MAGIC;
    header[MF_IMAGE_VERSION_WORD] = MF_IMAGE_VERSION;
    header[MF_IMAGE_BYTES] = (uint32_t)*image_bytes;
    header[MF_IMAGE_ARENA_BYTES] = mf_activation_bytes(m);
    header[MF_IMAGE_OP_COUNT] = mf_model_op_count(m);
    for (i = 0; i < mf_model_op_count(m); ++i) {
        header[MF_IMAGE_OP_COUNT] -= (uint32_t)mf_model_op_runs_in_next(m, i);
    }
    header[MF_IMAGE_TENSOR_COUNT] = mf_model_tensor_count(m);
    header[MF_IMAGE_INPUT_COUNT] = (uint32_t)mf_input_count(m);
    header[MF_IMAGE_OUTPUT_COUNT] = (uint32_t)mf_output_count(m);
    header[MF_IMAGE_OPS] = (uint32_t)ops;
    header[MF_IMAGE_OPS_BYTES] = (uint32_t)ops_bytes;
    header[MF_IMAGE_TENSORS] = (uint32_t)tensors;
    header[MF_IMAGE_IO] = (uint32_t)io;
    header[MF_IMAGE_DATA] = (uint32_t)layout.data;
    header[MF_IMAGE_DATA_BYTES] = (uint32_t)(*image_bytes - layout.data);
    if (out == NULL) {
        return MF_OK;
    }
    if (out_size < *image_bytes) {
        return MF_ERR_BAD_ARGUMENT;
    }
    mf_put_bytes(&w, 0, header, sizeof header);
    header[MF_IMAGE_CHECKSUM] = mf_prepared_checksum(out, *image_bytes);
    mf_put_bytes(&w, 0, header, sizeof header);
    return MF_OK;
}

/* The C function that runs kernel key `key`, NULL if none is built in. */
static const char *mf_eval_function(int32_t key)
{
    static const struct {
        int32_t key;
        const char *function;
    } functions[] = {
#define MF_KERNEL(code, prefix, flags) {code, #prefix "_eval"},
#include MF_KERNEL_LIST
#undef MF_KERNEL
#define MF_EVAL_VARIANT(code, variant, function) {MF_EVAL_KEY(code, variant), #function},
#include "kernels/mf_eval_variants.h"
#undef MF_EVAL_VARIANT
    };
    size_t i;
    for (i = 0; i < sizeof functions / sizeof functions[0]; ++i) {
        if (functions[i].key == key) {
            return functions[i].function;
        }
    }
    return NULL;
}

size_t mf_prepared_eval_list(const void *image, size_t image_size, char *out, size_t out_size)
{
    const uint32_t *words = (const uint32_t *)image;
    const size_t header = MF_IMAGE_HEADER_WORDS;
    size_t length = 0;
    size_t pos;
    uint32_t i;
    if (image == NULL || image_size < 4u * header || (uint64_t)words[MF_IMAGE_OPS] + words[MF_IMAGE_OPS_BYTES] > image_size) {
        return 0;
    }
    pos = words[MF_IMAGE_OPS] / 4u;
    for (i = 0; i < words[MF_IMAGE_OP_COUNT] && pos + MF_OP_WORDS <= image_size / 4u; ++i) {
        const int32_t key = (int32_t)words[pos];
        const char *function = mf_eval_function(key);
        size_t seen = words[MF_IMAGE_OPS] / 4u;
        int first = 1;
        while (seen < pos) { /* each key once */
            first = first && (int32_t)words[seen] != key;
            seen += MF_OP_WORDS + words[seen + 1] + words[seen + 2];
        }
        if (function == NULL) {
            return 0;
        }
        if (first) {
            const int n = snprintf(out != NULL && length < out_size ? out + length : NULL,
                                   out != NULL && length < out_size ? out_size - length : 0, "MF_EVAL(%ld, %s)\n", (long)key,
                                   function);
            length += n > 0 ? (size_t)n : 0u;
        }
        pos += MF_OP_WORDS + words[pos + 1] + words[pos + 2];
    }
    return length;
}
