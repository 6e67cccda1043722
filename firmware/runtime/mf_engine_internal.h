/*
 * What the prepared-image writer (mf_prepare.c, host only) reads of a model
 * the engine loaded: the interpreter's own prepare and planner run once, and
 * the writer copies their results into a const image for mf_prepared.c.
 */
#ifndef MF_ENGINE_INTERNAL_H
#define MF_ENGINE_INTERNAL_H

#include "mf_engine.h"
#include "mf_kernel.h"

#define MF_NO_STORAGE 0xFFFFFFFFu /* a tensor offset: constant or unused tensor */

/* mf_load, with op-data records prepared for flash (mf_op_data_in_flash) with the build's `choices`
 * (MF_CHOICE_* of mf_kernel.h, mf_op_image_choices). */
mf_status mf_load_for_image(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size,
                            mf_model **model, mf_fault *fault, uint32_t choices);

uint32_t mf_model_op_count(const mf_model *model);
uint32_t mf_model_tensor_count(const mf_model *model);
/* Bytes of op `index`'s scratch buffer for records in flash, made with the choices the model was loaded with (its
 * prepare run again, without room for records). */
uint32_t mf_model_scratch_bytes(const mf_model *model, uint32_t index);
/* Whether op `index` runs inside the next op (a fused pair, kernels/mf_depthwise_fc.h): images leave it out. */
int mf_model_op_runs_in_next(const mf_model *model, uint32_t index);
/* Offset of op `index`'s scratch buffer in the activations, MF_NO_STORAGE if none. */
uint32_t mf_model_scratch_offset(const mf_model *model, uint32_t index);
/* Tensor index of graph input (output != 0: output) `index`, -1 if out of range. */
int32_t mf_model_io_tensor(const mf_model *model, int output, uint32_t index);
/* A tensor's view and its offset in the activations (MF_NO_STORAGE for constants and unused tensors). */
mf_status mf_model_tensor(const mf_model *model, int32_t index, mf_tensor *view, uint32_t *offset);
/* Operator `index` as its eval sees it (op->data set), and its tensor indices: inputs, then outputs (a fused
 * op's, at its second op: mf_depthwise_fc.h). */
mf_status mf_model_op(const mf_model *model, uint32_t index, mf_op *op, mf_tensor *inputs, mf_tensor *outputs,
                      int32_t *builtin, int32_t *tensor_indices);
/* Bytes of operator `index`'s op-data record, 0 if none. */
uint32_t mf_model_record_bytes(const mf_model *model, uint32_t index);

#endif /* MF_ENGINE_INTERNAL_H */
