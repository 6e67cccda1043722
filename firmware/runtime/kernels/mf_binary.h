/* Bit-packing helpers shared by Larq Compute Engine's ops (LceQuantize,
 * LceBconv2d, LceDequantize): values of +1 and -1 packed along the channel
 * axis into 32-bit words, channel c in bit c % 32 of word c / 32, bit 0 for
 * +1 (x >= 0, or x >= zero point) and 1 for -1; bits past the channel count
 * are 0. */
#ifndef MF_BINARY_H
#define MF_BINARY_H

#include <stdint.h>
#include <string.h>

#include "mf_kernel.h"

#define MF_BITPACK_WIDTH 32

/* Words holding `channels` bits. */
static inline int32_t mf_bitpacked_words(int32_t channels) { return (channels + MF_BITPACK_WIDTH - 1) / MF_BITPACK_WIDTH; }

/* Set bits of a word: the SWAR bit trick, four adds and a multiply (Cortex-M has no popcount instruction). */
static inline int32_t mf_popcount32(uint32_t x)
{
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    x = (x + (x >> 4)) & 0x0F0F0F0Fu;
    return (int32_t)((x * 0x01010101u) >> 24);
}

/* A 32-bit word of constant data (weights, thresholds) with no alignment promise. GCC's builtin
 * makes it one load: firmware is built -ffreestanding, where a plain memcpy is a call. */
static inline uint32_t mf_binary_word_at(const void *data, size_t index)
{
    uint32_t value;
#if defined(__GNUC__)
    __builtin_memcpy(&value, (const uint8_t *)data + index * sizeof value, sizeof value);
#else
    memcpy(&value, (const uint8_t *)data + index * sizeof value, sizeof value);
#endif
    return value;
}

/* `packed` is `unpacked` bit-packed: the same rank and leading dimensions (each at least 1),
 * the last one in words. */
static inline int mf_bitpacked_shape_ok(const mf_tensor *unpacked, const mf_tensor *packed)
{
    int32_t axis;
    if (unpacked->rank < 1 || unpacked->rank != packed->rank) {
        return 0;
    }
    for (axis = 0; axis + 1 < unpacked->rank; ++axis) {
        if (unpacked->dims[axis] != packed->dims[axis] || unpacked->dims[axis] < 1) {
            return 0;
        }
    }
    return unpacked->dims[axis] >= 1 && packed->dims[axis] == mf_bitpacked_words(unpacked->dims[axis]);
}

#endif /* MF_BINARY_H */
