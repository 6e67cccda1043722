/* The prepared-image writer, for host builds (mcuforge.firmware.prepared). */
#ifndef MF_PREPARE_H
#define MF_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

/* Loads the model into `arena` with records prepared for flash, then writes
 * its prepared image (mf_prepared.h) into `out` when out_size is enough;
 * *image_bytes gets the image's size either way (out NULL: only measures).
 * choices: the build's MF_CHOICE_* bits (mf_kernel.h), 0 for the kernels' own choices. */
mf_status mf_prepare_image(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, uint32_t choices,
                           uint8_t *out, size_t out_size, size_t *image_bytes, mf_fault *fault);

/* A firmware's runner table for a prepared image: one line MF_EVAL(kernel key,
 * eval function) per kernel key its ops use, written to `out` (NUL-terminated
 * when it fits); returns its length, 0 for an image it cannot read. A
 * firmware built with -DMF_EVAL_LIST naming such a file links only those
 * functions (mf_prepared.c): the variants the model runs, not the kernels'
 * dispatching evals. */
size_t mf_prepared_eval_list(const void *image, size_t image_size, char *out, size_t out_size);

#endif /* MF_PREPARE_H */
