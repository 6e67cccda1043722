/*
 * Bounds-checked reading of a FlexBuffer map (the custom_options of TFLite
 * custom ops, e.g. Larq Compute Engine's): just what kernels need, integer
 * values looked up by key. Any byte sequence yields a value, "absent" or
 * MF_ERR_BAD_MODEL, never a read outside [data, data + size).
 */
#ifndef MF_FLEXBUFFER_H
#define MF_FLEXBUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

/* The integer (int, uint or bool; inline or indirect) stored under `key` in
 * the root map of the FlexBuffer `data`: *found = 0 when the key is absent
 * (or `size` is 0); MF_ERR_BAD_MODEL when the buffer is malformed, the value
 * is not an integer or does not fit int32. */
mf_status mf_flex_map_int(const uint8_t *data, size_t size, const char *key, int32_t *value, int *found);

#endif /* MF_FLEXBUFFER_H */
