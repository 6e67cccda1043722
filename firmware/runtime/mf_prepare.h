/* The prepared-image writer, for host builds (mcuforge.firmware.prepared). */
#ifndef MF_PREPARE_H
#define MF_PREPARE_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

/* Loads the model into `arena` with records prepared for flash, then writes
 * its prepared image (mf_prepared.h) into `out` when out_size is enough;
 * *image_bytes gets the image's size either way (out NULL: only measures). */
mf_status mf_prepare_image(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size, uint8_t *out,
                           size_t out_size, size_t *image_bytes, mf_fault *fault);

#endif /* MF_PREPARE_H */
