/*
 * The binary dot product of the DSP LceBconv2d: differing bits of two word
 * arrays (XOR, then population count). Cortex-M4 has no popcount
 * instruction; this is the SWAR bit trick (counts per 2, then 4 bits) on two
 * words at once, whose nibble counts are added before one step to byte counts,
 * and USADA8 adds the four byte counts to the total in one instruction:
 * 10.5 instructions a word (the asm loop), no memory but the operands. A
 * 256-entry byte table compiles to 17 instructions a word, six of them loads,
 * plus 256 bytes of flash (bench/binary.py counts both loops).
 */
#ifndef MFD_BINARY_H
#define MFD_BINARY_H

#include <stdint.h>

#include "mfd_dsp.h"

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
    int32_t i = 0;
#if defined(MFD_ASM_LOOPS)
    if (words >= 2) {
        /* The C loop below, two words an iteration in 21 instructions: the masks stay in registers so each
         * shift folds into its AND, and the XOR operands are reused as temporaries. */
        const uint32_t *pa = a, *pb = b;
        uint32_t pairs = (uint32_t)words / 2u, a0, a1, b0, b1;
        const uint32_t m55 = 0x55555555u, m33 = 0x33333333u, m0f = 0x0F0F0F0Fu, zero = 0u;
        __asm__ volatile(
            "1:\n\t"
            "ldrd %[a0], %[a1], [%[pa]], #8\n\t"
            "ldrd %[b0], %[b1], [%[pb]], #8\n\t"
            "eor %[a0], %[a0], %[b0]\n\t"
            "eor %[a1], %[a1], %[b1]\n\t"
            "and %[b0], %[m55], %[a0], lsr #1\n\t"
            "and %[b1], %[m55], %[a1], lsr #1\n\t"
            "sub %[a0], %[a0], %[b0]\n\t"
            "sub %[a1], %[a1], %[b1]\n\t"
            "and %[b0], %[m33], %[a0], lsr #2\n\t"
            "and %[b1], %[m33], %[a1], lsr #2\n\t"
            "and %[a0], %[a0], %[m33]\n\t"
            "and %[a1], %[a1], %[m33]\n\t"
            "add %[a0], %[a0], %[b0]\n\t"
            "add %[a1], %[a1], %[b1]\n\t"
            "add %[a0], %[a0], %[a1]\n\t"
            "and %[b0], %[m0f], %[a0], lsr #4\n\t"
            "and %[a0], %[a0], %[m0f]\n\t"
            "add %[a0], %[a0], %[b0]\n\t"
            "usada8 %[total], %[a0], %[zero], %[total]\n\t"
            "subs %[pairs], %[pairs], #1\n\t"
            "bne 1b"
            : [a0] "=&r"(a0), [a1] "=&r"(a1), [b0] "=&r"(b0), [b1] "=&r"(b1), [pa] "+r"(pa), [pb] "+r"(pb),
              [pairs] "+r"(pairs), [total] "+r"(total)
            : [m55] "r"(m55), [m33] "r"(m33), [m0f] "r"(m0f), [zero] "r"(zero)
            : "cc", "memory");
        i = words & ~1;
    }
#endif
    for (; i + 1 < words; i += 2) {
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
