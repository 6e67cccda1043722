/* INT4 weights (MF_WEIGHTS_INT4): the converter packs a tensor's values two
 * a byte in flat order, value 2k in the low nibble of byte k and 2k + 1 in
 * the high one (TFLM's UnpackDenseInt4IntoInt8). The kernels read them in
 * place, one nibble at a time, so no unpacked copy takes arena bytes (TFLM
 * unpacks each filter into its arena). Each INT4 kernel is its int8 twin's
 * loop compiled again with MF_*_WEIGHT reading nibbles (conv_int4.c and the
 * others include the int8 file). */
#ifndef MF_INT4_H
#define MF_INT4_H

#include "mf_affine.h"

/* Value `index` of a packed INT4 tensor, sign-extended. */
static inline int32_t mf_int4_at(const int8_t *packed, size_t index)
{
    const uint32_t byte = (uint8_t)packed[index >> 1];
    const uint32_t nibble = (index & 1u) != 0 ? byte >> 4 : byte & 0xFu;
    return (int32_t)(nibble ^ 8u) - 8;
}

#endif /* MF_INT4_H */
