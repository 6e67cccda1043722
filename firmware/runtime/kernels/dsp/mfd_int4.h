/*
 * INT4 weights (mf_int4.h: two a byte, value 2k in byte k's low nibble) in
 * the DSP loops: a word of eight weights becomes four int16 lane pairs in
 * five instructions, with no per-nibble sign extension. Masking each nibble
 * into the top half of its byte (w << 4 and w, both & 0xF0F0F0F0) makes every
 * byte 16 times its weight as int8; SXTB16 and SXTB16 ROR 8 then give the
 * pairs (v0, v4), (v2, v6) from the low nibbles and (v1, v5), (v3, v7) from
 * the high ones, each lane 16 v. The dot products are so 16 times the true
 * ones, exact while they stay inside int32 (at most 16 x 8 x 255 per MAC:
 * MFD_INT4_MAX_VALUES products), and an arithmetic shift by 4 gives the sum
 * back exactly.
 */
#ifndef MFD_INT4_H
#define MFD_INT4_H

#include "mfd_dsp.h"

/* The most products a 16-times sum may hold: 2^16 x 16 x 8 x 255 < 2^31. */
#define MFD_INT4_MAX_VALUES 65536

/* Weights k..k+7 of a packed word as the lane pairs (v0, v4), (v2, v6), (v1, v5), (v3, v7), each 16 v. */
typedef struct mfd_int4_lanes {
    uint32_t v04, v26, v15, v37;
} mfd_int4_lanes;

static inline mfd_int4_lanes mfd_int4_unpack(uint32_t word)
{
    const uint32_t low = (word << 4) & 0xF0F0F0F0u, high = word & 0xF0F0F0F0u;
    mfd_int4_lanes lanes;
    lanes.v04 = mfd_sxtb16(low);
    lanes.v26 = mfd_sxtb16_ror8(low);
    lanes.v15 = mfd_sxtb16(high);
    lanes.v37 = mfd_sxtb16_ror8(high);
    return lanes;
}

/* acc + 16 x (eight weights . eight int16 inputs stored as the pairs (x0, x4), (x2, x6), (x1, x5), (x3, x7)). */
static inline int32_t mfd_int4_dot8(mfd_int4_lanes w, const uint32_t *x, int32_t acc)
{
    acc = mfd_smlad(w.v04, x[0], acc);
    acc = mfd_smlad(w.v26, x[1], acc);
    acc = mfd_smlad(w.v15, x[2], acc);
    return mfd_smlad(w.v37, x[3], acc);
}

#endif /* MFD_INT4_H */
