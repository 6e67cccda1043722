/*
 * The prepared-model runner: runs a const image that the host build of the
 * engine wrote from a .tflite (mf_prepare.c, `mcuforge.firmware.prepared`)
 * after running the kernels' prepare and the memory planner once. The device
 * links no flatbuffer reader, planner or prepare: its RAM is the activations
 * alone, its flash only what eval reads.
 *
 *   static mf_prepared runner;
 *   alignas(16) static uint8_t arena[MODEL_ARENA_BYTES];
 *   if (mf_prepared_open(model_image, sizeof model_image, arena, sizeof arena, &runner) != MF_OK) ...
 *   mf_prepared_input(&runner, 0, &in);  fill in.data
 *   mf_prepared_invoke(&runner);
 *   mf_prepared_output(&runner, 0, &out);
 *
 * Image format (little-endian 32-bit words): a header (MF_IMAGE_HEADER_WORDS),
 * then ops, tensor descriptors, graph inputs and outputs, and the data section
 * (op-data records, copies of options tables, constant tensors).
 *   op:     kernel key (MF_EVAL_KEY), input count, output count, record offset, record bytes,
 *           options offset, options bytes, options table, scratch offset in
 *           the arena (0xFFFFFFFF: none), then the tensor indices (inputs,
 *           -1 for an absent one, then outputs)
 *   tensor: type, rank, dims[6], zero point, scale (float bits), where, offset
 */
#ifndef MF_PREPARED_H
#define MF_PREPARED_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

#ifdef __cplusplus
extern "C" {
#endif

#define MF_IMAGE_MAGIC 0x3150464Du /* "MFP1" */
#define MF_IMAGE_VERSION 6u /* 2: sparse filters in affine op records (kernels/mf_sparse.h); 3: a scratch offset per op, eval variants in kernel keys, folded fully connected biases; 4: DSP 3 x 3 depthwise records carry their ring slots, 2:4 positions in order, the values of 2:4 filters with folded biases interleaved by pairs of groups; 5: 2:4 groups along whole conv windows, ungrouped 2:4 conv windows with folded biases, INT4 2:4 filters (MF_WEIGHTS_SPARSE_2_4_INT4); 6: 2:4 depthwise filters (kernels/mf_sparse.h), their eval variants by dense loop */

enum {
    MF_IMAGE_MAGIC_WORD, MF_IMAGE_VERSION_WORD, MF_IMAGE_BYTES, MF_IMAGE_CHECKSUM,
    MF_IMAGE_ARENA_BYTES, MF_IMAGE_OP_COUNT, MF_IMAGE_TENSOR_COUNT,
    MF_IMAGE_INPUT_COUNT, MF_IMAGE_OUTPUT_COUNT, MF_IMAGE_OPS, MF_IMAGE_TENSORS,
    MF_IMAGE_IO, MF_IMAGE_DATA, MF_IMAGE_DATA_BYTES, MF_IMAGE_OPS_BYTES,
    MF_IMAGE_HEADER_WORDS
};
enum { MF_OP_WORDS = 9, MF_TENSOR_WORDS = 12 };
/* Where a tensor's bytes are (tensor word 10); word 11 is the offset. */
enum { MF_WHERE_NONE = 0, MF_WHERE_ARENA = 1, MF_WHERE_CONSTANT = 2 };

/* A validated image and its arena; caller-owned, 8 bytes on the device. */
typedef struct mf_prepared {
    const uint8_t *image;
    uint8_t *arena;
} mf_prepared;

/* Checks the image (magic, format version, checksum, every offset and index
 * in bounds, a kernel for every op) and binds it to the arena. The image must
 * start on an 8-byte boundary. */
mf_status mf_prepared_open(const void *image, size_t image_size, void *arena, size_t arena_size, mf_prepared *runner);
mf_status mf_prepared_invoke(const mf_prepared *runner);
size_t mf_prepared_input_count(const mf_prepared *runner);
size_t mf_prepared_output_count(const mf_prepared *runner);
mf_status mf_prepared_input(const mf_prepared *runner, size_t index, mf_tensor_info *info);
mf_status mf_prepared_output(const mf_prepared *runner, size_t index, mf_tensor_info *info);
/* The arena an image needs (its activations), 0 if `image` is too short to say. */
size_t mf_prepared_arena_bytes(const void *image, size_t image_size);
/* FNV-1a over the image with its checksum word read as 0. */
uint32_t mf_prepared_checksum(const uint8_t *image, size_t image_bytes);

#ifdef __cplusplus
}
#endif

#endif /* MF_PREPARED_H */
