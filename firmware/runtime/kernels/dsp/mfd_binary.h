/*
 * The binary dot product of the DSP LceBconv2d: differing bits of two word
 * arrays (XOR, then population count). Cortex-M4 has no popcount
 * instruction; this is the SWAR bit trick (counts per 2, then 4 bits) on two
 * words at once, whose nibble counts are added before one step to byte counts,
 * and USADA8 adds the four byte counts to the total in one instruction:
 * about 10 instructions a word, no memory but the operands. (A 256-entry
 * byte table would cost four table loads and four adds a word, plus the byte
 * extractions, and 256 bytes of flash; bench/binary.py counts both.)
 */
#ifndef MFD_BINARY_H
#define MFD_BINARY_H

#include <stdint.h>

#if defined(__ARM_FEATURE_DSP)
#include <arm_acle.h>
/* acc + the sum of the four bytes of x. */
static inline uint32_t mfd_usada8(uint32_t x, uint32_t acc) { return __usada8(x, 0u, acc); }
#else
static inline uint32_t mfd_usada8(uint32_t x, uint32_t acc) { return acc + (x & 0xFFu) + ((x >> 8) & 0xFFu) + ((x >> 16) & 0xFFu) + (x >> 24); }
#endif

/* Counts per nibble (at most 4) of the set bits of x. */
static inline uint32_t mfd_nibble_counts(uint32_t x)
{
    x -= (x >> 1) & 0x55555555u;
    return (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
}

/* Sum of the differing bits of a[i] and b[i] for i < words (both 4-byte aligned). */
static inline int32_t mfd_xor_popcount(const uint32_t *a, const uint32_t *b, int32_t words)
{
    uint32_t total = 0;
    int32_t i;
    for (i = 0; i + 1 < words; i += 2) {
        const uint32_t nibbles = mfd_nibble_counts(a[i] ^ b[i]) + mfd_nibble_counts(a[i + 1] ^ b[i + 1]); /* <= 8 each */
        total = mfd_usada8((nibbles & 0x0F0F0F0Fu) + ((nibbles >> 4) & 0x0F0F0F0Fu), total);
    }
    if (i < words) {
        const uint32_t nibbles = mfd_nibble_counts(a[i] ^ b[i]);
        total = mfd_usada8((nibbles & 0x0F0F0F0Fu) + ((nibbles >> 4) & 0x0F0F0F0Fu), total);
    }
    return (int32_t)total;
}

#endif /* MFD_BINARY_H */
