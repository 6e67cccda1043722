/* The prepared-model runner (mf_prepared.h): checks an image once, then runs
 * its ops' eval in order, views built from the image's tensor descriptors. */
#include "mf_kernel.h"
#include "mf_prepared.h"

#define MF_IMAGE_NO_STORAGE 0xFFFFFFFFu

typedef char mf_view_copies_six_dims[MF_MAX_DIMS == 6 ? 1 : -1]; /* mf_prepared_view's unrolled copy */
#define MF_MAX_IMAGE_OUTPUTS 4

/* Word `word` of the image (8-byte aligned: every word is aligned). A plain
 * load, not memcpy: firmware is built -ffreestanding, where memcpy is a call. */
static uint32_t mf_word(const uint8_t *image, size_t word) { return ((const uint32_t *)(const void *)image)[word]; }

/* Word `i` of a section that starts at byte `offset`. */
static uint32_t mf_at(const uint8_t *image, uint32_t offset, size_t i) { return mf_word(image, offset / 4u + i); }

uint32_t mf_prepared_checksum(const uint8_t *image, size_t image_bytes)
{
    uint32_t hash = 2166136261u;
    size_t i;
    for (i = 0; i < image_bytes; ++i) {
        const uint8_t byte = i / 4u == MF_IMAGE_CHECKSUM ? 0u : image[i];
        hash = (hash ^ byte) * 16777619u;
    }
    return hash;
}

#ifdef MF_EVAL_LIST /* a firmware's (mf_prepared_eval_list): the functions its image's kernel keys name */
#define MF_EVAL(key, function) mf_status function(const mf_op *op);
#include MF_EVAL_LIST
#undef MF_EVAL
#endif

/* The eval of kernel key `key` (MF_EVAL_KEY); without MF_EVAL_LIST, every
 * kernel's own eval, which runs the variant its record names. */
static mf_eval_fn mf_prepared_eval(int32_t key)
{
    static const struct {
        int32_t key;
        mf_eval_fn eval;
    } evals[] = {
#ifdef MF_EVAL_LIST
#define MF_EVAL(key, function) {key, function},
#include MF_EVAL_LIST
#undef MF_EVAL
#else
#define MF_KERNEL(code, prefix, flags) {code, prefix##_eval},
#include MF_KERNEL_LIST
#undef MF_KERNEL
#endif
    };
    size_t i;
#ifndef MF_EVAL_LIST
    key = MF_EVAL_CODE(key);
#endif
    for (i = 0; i < sizeof evals / sizeof evals[0]; ++i) {
        if (evals[i].key == key) {
            return evals[i].eval;
        }
    }
    return NULL;
}

/* [offset, offset + bytes) inside [low, limit) with offset a multiple of `align`: the one bounds check of every
 * section, tensor, record and scratch the runner reads (in 32 bits: no sum can wrap). */
static int mf_span_ok(uint32_t offset, uint32_t bytes, uint32_t low, uint32_t limit, uint32_t align)
{
    return offset % align == 0 && offset >= low && bytes <= limit && offset <= limit - bytes;
}

/* A tensor descriptor of the image `header` starts: type, shape and place in bounds. */
static int mf_tensor_ok(const uint32_t *header, const uint32_t *descriptor)
{
    const uint32_t where = descriptor[10] & 0xFFu;
    const mf_dtype type = (mf_dtype)descriptor[0];
    const uint32_t elem = (uint32_t)mf_type_size(type);
    uint32_t elements = 1;
    uint32_t d;
    if (elem == 0 || descriptor[1] > MF_MAX_DIMS || where > MF_WHERE_CONSTANT) {
        return 0;
    }
    for (d = 0; d < descriptor[1]; ++d) { /* elements x elem stays below 2^31 */
        const uint32_t dim = descriptor[2 + d];
        if (dim > 0x7FFFFFFFu || (dim != 0 && elements > 0x7FFFFFFFu / elem / dim)) {
            return 0;
        }
        elements *= dim;
    }
    return where == MF_WHERE_NONE ||
           mf_span_ok(descriptor[11], (uint32_t)mf_type_bytes(type, elements), 0,
                      header[where == MF_WHERE_ARENA ? MF_IMAGE_ARENA_BYTES : MF_IMAGE_DATA_BYTES],
                      where == MF_WHERE_ARENA ? 4u : elem);
}

/* Whether `index` names a tensor of the image whose bytes are in the arena (graph inputs and outputs, op outputs). */
static int mf_arena_tensor(const uint32_t *header, const uint32_t *descriptors, uint32_t index)
{
    return index < header[MF_IMAGE_TENSOR_COUNT] && (descriptors[index * MF_TENSOR_WORDS + 10] & 0xFFu) == MF_WHERE_ARENA;
}

/* Every op: counts, tensor indices (outputs in the arena), record and options in the data section, scratch in the
 * arena, a kernel. */
static int mf_ops_ok(const uint32_t *header, const uint32_t *descriptors)
{
    const uint32_t *words = header + header[MF_IMAGE_OPS] / 4u;
    const uint32_t *end = words + header[MF_IMAGE_OPS_BYTES] / 4u;
    uint32_t i;
    for (i = 0; i < header[MF_IMAGE_OP_COUNT]; ++i) {
        uint32_t k;
        if (end - words < MF_OP_WORDS || words[1] > MF_MAX_OP_TENSORS || words[2] > MF_MAX_IMAGE_OUTPUTS ||
            (uint32_t)(end - words) < MF_OP_WORDS + words[1] + words[2] || mf_prepared_eval((int32_t)words[0]) == NULL ||
            !mf_span_ok(words[3], words[4], 0, header[MF_IMAGE_DATA_BYTES], 4u) ||
            !mf_span_ok(words[5], words[6], 0, header[MF_IMAGE_DATA_BYTES], 4u) ||
            (words[8] != MF_IMAGE_NO_STORAGE && !mf_span_ok(words[8], 0, 0, header[MF_IMAGE_ARENA_BYTES], 4u))) {
            return 0;
        }
        for (k = 0; k < words[1] + words[2]; ++k) {
            const uint32_t index = words[MF_OP_WORDS + k];
            if (k < words[1] ? index != 0xFFFFFFFFu && index >= header[MF_IMAGE_TENSOR_COUNT]
                             : !mf_arena_tensor(header, descriptors, index)) {
                return 0;
            }
        }
        words += MF_OP_WORDS + words[1] + words[2];
    }
    return 1;
}

/* The whole image: header, checksum, then every section and entry. */
static mf_status mf_check_image(const uint8_t *image, size_t image_size)
{
    const uint32_t *header = (const uint32_t *)(const void *)image;
    const uint32_t *descriptors;
    uint32_t bytes[4]; /* of the sections ops, tensors, I/O and data (consecutive header words) */
    uint32_t i;
    if (image_size < 4u * MF_IMAGE_HEADER_WORDS || header[MF_IMAGE_MAGIC_WORD] != MF_IMAGE_MAGIC ||
        header[MF_IMAGE_VERSION_WORD] != MF_IMAGE_VERSION || header[MF_IMAGE_BYTES] > image_size ||
        mf_prepared_checksum(image, header[MF_IMAGE_BYTES]) != header[MF_IMAGE_CHECKSUM] ||
        header[MF_IMAGE_INPUT_COUNT] > 0xFFFF || header[MF_IMAGE_OUTPUT_COUNT] > 0xFFFF ||
        header[MF_IMAGE_TENSOR_COUNT] > 0x7FFF || header[MF_IMAGE_DATA] % 8u != 0) {
        return MF_ERR_BAD_MODEL;
    }
    bytes[0] = header[MF_IMAGE_OPS_BYTES];
    bytes[1] = header[MF_IMAGE_TENSOR_COUNT] * MF_TENSOR_WORDS * 4u; /* counts bounded above: no wrap */
    bytes[2] = (header[MF_IMAGE_INPUT_COUNT] + header[MF_IMAGE_OUTPUT_COUNT]) * 4u;
    bytes[3] = header[MF_IMAGE_DATA_BYTES];
    for (i = 0; i < 4u; ++i) {
        if (!mf_span_ok(header[MF_IMAGE_OPS + i], bytes[i], 4u * MF_IMAGE_HEADER_WORDS, header[MF_IMAGE_BYTES], 4u)) {
            return MF_ERR_BAD_MODEL;
        }
    }
    descriptors = header + header[MF_IMAGE_TENSORS] / 4u;
    for (i = 0; i < header[MF_IMAGE_TENSOR_COUNT]; ++i) {
        if (!mf_tensor_ok(header, descriptors + i * MF_TENSOR_WORDS)) {
            return MF_ERR_BAD_MODEL;
        }
    }
    for (i = 0; i < bytes[2] / 4u; ++i) {
        if (!mf_arena_tensor(header, descriptors, header[header[MF_IMAGE_IO] / 4u + i])) {
            return MF_ERR_BAD_MODEL;
        }
    }
    return mf_ops_ok(header, descriptors) ? MF_OK : MF_ERR_BAD_MODEL;
}

size_t mf_prepared_arena_bytes(const void *image, size_t image_size)
{
    return image != NULL && image_size >= 4u * MF_IMAGE_HEADER_WORDS ? mf_word((const uint8_t *)image, MF_IMAGE_ARENA_BYTES) : 0;
}

mf_status mf_prepared_open(const void *image, size_t image_size, void *arena, size_t arena_size, mf_prepared *runner)
{
    mf_status status;
    if (image == NULL || arena == NULL || runner == NULL || (uintptr_t)image % 8u != 0 || (uintptr_t)arena % 4u != 0) {
        return MF_ERR_BAD_ARGUMENT;
    }
    runner->image = NULL;
    runner->arena = NULL;
    status = mf_check_image((const uint8_t *)image, image_size);
    if (status != MF_OK) {
        return status;
    }
    if (arena_size < mf_prepared_arena_bytes(image, image_size)) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    runner->image = (const uint8_t *)image;
    runner->arena = (uint8_t *)arena;
    return MF_OK;
}

/* The view of tensor `index` (-1: absent) from its descriptor; `constants`: the image's data section. */
static inline void mf_prepared_view(const uint8_t *constants, uint8_t *arena, const uint32_t *descriptors, int32_t index,
                                    mf_tensor *view)
{
    static const uint32_t absent[MF_TENSOR_WORDS] = {MF_INT8, (uint32_t)-1, 0, 0, 0, 0, 0, 0, 0, 0, MF_WHERE_NONE, 0};
    const uint32_t *words = index < 0 ? absent : descriptors + (uint32_t)index * MF_TENSOR_WORDS;
    const uint32_t where = words[10] & 0xFFu;
    union {
        uint32_t bits;
        float value;
    } scale;
    view->type = (mf_dtype)words[0];
    view->rank = (int32_t)words[1];
    /* The writer stores 0 past the rank; unrolled: this runs for every tensor of every op. */
    view->dims[0] = (int32_t)words[2];
    view->dims[1] = (int32_t)words[3];
    view->dims[2] = (int32_t)words[4];
    view->dims[3] = (int32_t)words[5];
    view->dims[4] = (int32_t)words[6];
    view->dims[5] = (int32_t)words[7];
    view->zero_point = (int32_t)words[8];
    scale.bits = words[9];
    view->scale = scale.value;
    view->quant_count = (int32_t)(words[10] >> 8);
    view->is_constant = where == MF_WHERE_CONSTANT;
    view->quant_dim = 0;
    view->scales = NULL;
    view->data = where == MF_WHERE_ARENA      ? (void *)(arena + words[11])
                 : where == MF_WHERE_CONSTANT ? (void *)(uintptr_t)(constants + words[11])
                                              : NULL;
}

mf_status mf_prepared_invoke(const mf_prepared *runner)
{
    const uint8_t *image;
    const uint8_t *data;
    const uint32_t *descriptors;
    const uint32_t *words; /* the current op's */
    uint32_t i;
    if (runner == NULL || runner->image == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    image = runner->image;
    data = image + mf_word(image, MF_IMAGE_DATA);
    descriptors = (const uint32_t *)(const void *)(image + mf_word(image, MF_IMAGE_TENSORS));
    words = (const uint32_t *)(const void *)(image + mf_word(image, MF_IMAGE_OPS));
    for (i = 0; i < mf_word(image, MF_IMAGE_OP_COUNT); ++i) {
        mf_tensor inputs[MF_MAX_OP_TENSORS];
        mf_tensor outputs[MF_MAX_IMAGE_OUTPUTS];
        mf_op op;
        const uint32_t *tensors = words + MF_OP_WORDS;
        uint32_t k;
        mf_status status;
        op.options.base = words[6] != 0 ? data + words[5] : NULL;
        op.options.size = words[6];
        op.options.table = words[7];
        op.options.custom = NULL; /* custom ops keep what they read from it in their record */
        op.options.custom_size = 0;
        op.scratch = words[8] != MF_IMAGE_NO_STORAGE ? runner->arena + words[8] : NULL;
        op.overlap = NULL;
        op.pool = NULL;
        op.input_count = (int32_t)words[1];
        op.output_count = (int32_t)words[2];
        op.data = words[4] != 0 ? data + words[3] : NULL;
        op.version = 1;
        for (k = 0; k < words[1]; ++k) {
            mf_prepared_view(data, runner->arena, descriptors, (int32_t)tensors[k], &inputs[k]);
        }
        for (k = 0; k < words[2]; ++k) {
            mf_prepared_view(data, runner->arena, descriptors, (int32_t)tensors[words[1] + k], &outputs[k]);
        }
        op.inputs = inputs;
        op.outputs = outputs;
        status = mf_prepared_eval((int32_t)words[0])(&op);
        if (status != MF_OK) {
            return status;
        }
        words = tensors + words[1] + words[2];
    }
    return MF_OK;
}

static mf_status mf_prepared_io(const mf_prepared *r, size_t index, size_t first, size_t count, mf_tensor_info *info)
{
    const uint32_t *descriptors;
    mf_tensor view;
    uint32_t tensor;
    if (info == NULL || index >= count) {
        return MF_ERR_BAD_ARGUMENT;
    }
    descriptors = (const uint32_t *)(const void *)(r->image + mf_word(r->image, MF_IMAGE_TENSORS));
    tensor = mf_at(r->image, mf_word(r->image, MF_IMAGE_IO), first + index);
    mf_prepared_view(r->image + mf_word(r->image, MF_IMAGE_DATA), r->arena, descriptors, (int32_t)tensor, &view);
    info->data = view.data;
    info->dims = (const int32_t *)(const void *)(descriptors + tensor * MF_TENSOR_WORDS + 2u);
    info->rank = view.rank;
    info->type = view.type;
    info->scale = view.scale;
    info->zero_point = view.zero_point;
    info->bytes = mf_type_bytes(view.type, (size_t)mf_tensor_flat_size(&view));
    return MF_OK;
}

size_t mf_prepared_input_count(const mf_prepared *runner)
{
    return runner != NULL && runner->image != NULL ? mf_word(runner->image, MF_IMAGE_INPUT_COUNT) : 0;
}

size_t mf_prepared_output_count(const mf_prepared *runner)
{
    return runner != NULL && runner->image != NULL ? mf_word(runner->image, MF_IMAGE_OUTPUT_COUNT) : 0;
}

mf_status mf_prepared_input(const mf_prepared *runner, size_t index, mf_tensor_info *info)
{
    if (runner == NULL || runner->image == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    return mf_prepared_io(runner, index, 0, mf_prepared_input_count(runner), info);
}

mf_status mf_prepared_output(const mf_prepared *runner, size_t index, mf_tensor_info *info)
{
    if (runner == NULL || runner->image == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    return mf_prepared_io(runner, index, mf_prepared_input_count(runner), mf_prepared_output_count(runner), info);
}
