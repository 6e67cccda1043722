/*
 * 2:4 sparse filters (mf_sparse.h: two int8 values and their 2-bit positions
 * a < b per group of four, biases folded) on cores with the DSP extension,
 * four output pixels at a time.
 *
 * Each group's two stored weights meet one of six input pairs (x_a, x_b).
 * The four pixels' inputs are first gathered into a column holding, per group
 * of four inputs, all six pairs as int16 lanes, each pair for the four pixels
 * side by side; a group's positions nibble then picks its pair's four words
 * (two LDRD), and SMLAD multiplies each by the group's two weights (one
 * int16x2 word) at once. Each positions byte (two groups) is decoded once for
 * the four pixels, so two stored weights cost one load and one SMLAD per
 * pixel. The sums are the portable loop's, exact in int32 (wrapping).
 */
#ifndef MFD_SPARSE24_H
#define MFD_SPARSE24_H

#include "../mf_sparse.h"
#include "mfd_dsp.h"

/* The column's layout. Group g's pair of nibble n (a | b << 2, a < b: 4, 8, 9, 12, 13 or 14) is at slot
 * 7g + n, so the nibble indexes it with no table: the slots of consecutive groups interleave (7 is not a
 * difference of two of 4, 8, 9, 12, 13, 14) and six of every seven are used. A slot is four words, the
 * pair of pixels 0 to 3. The column spans every nibble's slot (an image's nibbles are the encoder's, but
 * a read stays inside the scratch whatever they are). */
#define MFD_SPARSE24_GROUP_SLOTS 7
#define MFD_SPARSE24_SLOT_WORDS 4

/* Bytes 1 and 3 of x zero-extended to the two lanes (UXTB16 with ROR #8). */
static inline uint32_t mfd_sparse24_odd_bytes(uint32_t x)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("uxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
#else
    return (x >> 8) & 0x00FF00FFu;
#endif
}

/* Four channels' output words (byte p: pixel p) as four pixels' words (byte i: channel i), so that each
 * pixel's four outputs are one store. */
static inline void mfd_sparse24_transpose(const uint32_t channel[4], uint32_t pixel[4])
{
    const uint32_t even01 = (channel[0] & 0x00FF00FFu) | (channel[1] & 0x00FF00FFu) << 8;  /* pixels 0, 2 */
    const uint32_t odd01 = mfd_sparse24_odd_bytes(channel[0]) | (channel[1] & 0xFF00FF00u); /* pixels 1, 3 */
    const uint32_t even23 = (channel[2] & 0x00FF00FFu) | (channel[3] & 0x00FF00FFu) << 8;
    const uint32_t odd23 = mfd_sparse24_odd_bytes(channel[2]) | (channel[3] & 0xFF00FF00u);
    pixel[0] = mfd_pack_bottoms(even01, even23);
    pixel[1] = mfd_pack_bottoms(odd01, odd23);
    pixel[2] = mfd_pack_tops(even01, even23);
    pixel[3] = mfd_pack_tops(odd01, odd23);
}

/* The four pixels' sums. */
typedef struct mfd_sums4 {
    int32_t a0, a1, a2, a3;
} mfd_sums4;

/* Channels whose sums a pass keeps before requantizing them (mfd_sparse24_block): 16, so that 64 channels'
 * one-step constants (mfd_sparse24_store) take the scratch bytes 64 channels' sums took (the DS-CNN's arena
 * unchanged, for 1.4 % more instructions on its 1x1 layers than 64-channel blocks). */
#define MFD_SPARSE24_BLOCK 16

/* Scratch bytes of the column of k inputs (k / 4 groups) of four pixels. */
static inline size_t mfd_sparse24_column_bytes(int32_t k)
{
    return 4u * MFD_SPARSE24_SLOT_WORDS * (MFD_SPARSE24_GROUP_SLOTS * (size_t)(k / 4) + 9u);
}

/* Scratch bytes of the table of each channel's one-step constants (mfd_sparse24_store) after a word saying
 * whether the table holds them (4-byte aligned where the column and the sums end). */
static inline size_t mfd_sparse24_constants_bytes(int32_t channels)
{
    return 4u + (size_t)channels * sizeof(mfd_one_step);
}

/* Scratch bytes of an INT4 2:4 filter's values unpacked to int8 (k / 2 a channel, as the int8 2:4 layout). */
static inline size_t mfd_sparse24_unpacked_bytes(int32_t channels, int32_t k)
{
    return ((size_t)channels * (size_t)(k / 2) + 3u) / 4u * 4u;
}

/* Prepare of a conv whose record *head is about to be stored: when its filter will be stored in 2:4 (int8
 * or INT4) with folded biases (mf_sparse_plan, which only images do), the bytes of the column, of a block of
 * sums, of an INT4 filter's unpacked values and of four gathered windows (mf_sparse_windows_bytes); else 0. */
static inline size_t mfd_sparse24_scratch(const mf_op *op, const mf_affine_data *head)
{
    mf_affine_data plan = *head;
    const int32_t channels = op->inputs[1].dims[0];
    int32_t k;
    if (!mf_op_data_in_flash(op) || channels < 1 || mf_sparse_plan(op, MF_AFFINE_CONV, &plan) == 0 || !plan.bias_folded ||
        (plan.weights != MF_WEIGHTS_SPARSE_2_4 && plan.weights != MF_WEIGHTS_SPARSE_2_4_INT4)) {
        return 0;
    }
    k = mf_tensor_flat_size(&op->inputs[1]) / channels;
    return mfd_sparse24_column_bytes(k) +
           (size_t)(channels < MFD_SPARSE24_BLOCK ? channels : MFD_SPARSE24_BLOCK) * sizeof(mfd_sums4) +
           mfd_sparse24_constants_bytes(channels) + (plan.weights == MF_WEIGHTS_SPARSE_2_4_INT4 ? mfd_sparse24_unpacked_bytes(channels, k) : 0u) +
           mf_sparse_windows_bytes(op, head);
}

/* (a.bottom, b.top) as (bottom, top) lanes: PKHBT with no shift. */
static inline uint32_t mfd_sparse24_bottom_top(uint32_t a, uint32_t b)
{
#if defined(__ARM_FEATURE_DSP)
    uint32_t r;
    __asm__("pkhbt %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (a & 0xFFFFu) | (b & 0xFFFF0000u);
#endif
}

/* One pixel's six pairs of a group of four inputs (`quad`) into its words of the group's slots. */
static inline void mfd_sparse24_pairs(uint32_t *slots, uint32_t quad)
{
    const uint32_t even = mfd_sxtb16(quad), odd = mfd_sxtb16_ror8(quad); /* (x0, x2), (x1, x3) */
    slots[16] = mfd_pack_bottoms(even, odd);         /* nibble 4: (x0, x1) */
    slots[32] = even;                                /* 8: (x0, x2) */
    slots[36] = mfd_sparse24_bottom_top(odd, even);  /* 9: (x1, x2) */
    slots[48] = mfd_sparse24_bottom_top(even, odd);  /* 12: (x0, x3) */
    slots[52] = odd;                                 /* 13: (x1, x3) */
    slots[56] = mfd_pack_tops(even, odd);            /* 14: (x2, x3) */
}

/* The column of pixels x[0..3] (k inputs each, k % 4 == 0, in rows of `run` inputs (run % 4 == 0) that
 * lie stride[p] bytes apart from x[p] on): word 4 * (7g + n) + p holds pixel p's inputs (x_a, x_b) of
 * group g for each nibble n = a | b << 2, a < b. */
static inline void mfd_sparse24_column(const int8_t *const x[4], const int32_t stride[4], int32_t run, int32_t k,
                                       uint32_t *column)
{
    const int8_t *x0 = x[0], *x1 = x[1], *x2 = x[2], *x3 = x[3];
    uint32_t *slots = column;
    int32_t row;
    for (row = 0; row < k; row += run) {
        const int8_t *end = x0 + run;
        const int8_t *next0 = x0 + stride[0], *next1 = x1 + stride[1], *next2 = x2 + stride[2], *next3 = x3 + stride[3];
        for (; x0 < end; x0 += 4, x1 += 4, x2 += 4, x3 += 4, slots += MFD_SPARSE24_GROUP_SLOTS * MFD_SPARSE24_SLOT_WORDS) {
            mfd_sparse24_pairs(slots, mfd_read32(x0)); /* the four pixels' group side by side */
            mfd_sparse24_pairs(slots + 1, mfd_read32(x1));
            mfd_sparse24_pairs(slots + 2, mfd_read32(x2));
            mfd_sparse24_pairs(slots + 3, mfd_read32(x3));
        }
        x0 = next0;
        x1 = next1;
        x2 = next2;
        x3 = next3;
    }
}

/* s plus one group's weights w (int16 lanes: its first and second stored value) times the four pixels'
 * pairs x[0..3] of its inputs. */
static inline mfd_sums4 mfd_sparse24_group(mfd_sums4 s, uint32_t w, const uint32_t *x)
{
    s.a0 = mfd_smlad(w, x[0], s.a0);
    s.a1 = mfd_smlad(w, x[1], s.a1);
    s.a2 = mfd_smlad(w, x[2], s.a2);
    s.a3 = mfd_smlad(w, x[3], s.a3);
    return s;
}

/* s.a<p> plus one channel's k weights (values *v, positions *pos) . pixel p's inputs in the column; *v and
 * *pos move to the next channel's. */
static inline mfd_sums4 mfd_sparse24_channel(const uint32_t *column, const int8_t **values, const uint8_t **positions,
                                             int32_t k, mfd_sums4 s)
{
    const uint32_t pair_words = 2u * MFD_SPARSE24_GROUP_SLOTS * MFD_SPARSE24_SLOT_WORDS;
    int32_t i;
    for (i = 0; i < k / 8; ++i) { /* values interleaved: first 0, first 1, second 0, second 1 */
        const uint32_t bits = *(*positions)++;
        const uint32_t w = mfd_read32(*values);
        const uint32_t *pair = column + pair_words * (uint32_t)i;
        *values += 4;
        s = mfd_sparse24_group(s, mfd_sxtb16(w), pair + MFD_SPARSE24_SLOT_WORDS * (bits & 15u));
        s = mfd_sparse24_group(s, mfd_sxtb16_ror8(w),
                               pair + MFD_SPARSE24_SLOT_WORDS * (MFD_SPARSE24_GROUP_SLOTS + (bits >> 4)));
    }
    if (k % 8 != 0) { /* a last lone group */
        const int8_t *v = *values;
        const uint32_t w = ((uint32_t)(int32_t)v[0] & 0xFFFFu) | (uint32_t)(int32_t)v[1] << 16;
        s = mfd_sparse24_group(s, w, column + pair_words * (uint32_t)(k / 8) + MFD_SPARSE24_SLOT_WORDS * (**positions & 15u));
        *values += 2;
        ++*positions;
    }
    return s;
}

#if defined(MFD_ASM_LOOPS)
/* Two groups' weight words (their two values as int16 lanes) from their four interleaved values. */
#define MFD_SPARSE24_WEIGHTS                                                                                \
    "ldr %[t], [%[v]], #4\n\t"                                                                              \
    "sxtb16 %[w1], %[t]\n\t"                                                                                \
    "sxtb16 %[w2], %[t], ror #8\n\t"
/* The four pixels' sums plus weight word w times the slot's four words at `offset` from %[slot]. */
#define MFD_SPARSE24_SLOT(w, offset)                                                                        \
    "ldrd %[t], %[x], [%[slot], #" #offset "]\n\t"                                                          \
    "smlad %[a0], %[" #w "], %[t], %[a0]\n\t"                                                               \
    "smlad %[a1], %[" #w "], %[x], %[a1]\n\t"                                                               \
    "ldrd %[t], %[x], [%[slot], #" #offset " + 8]\n\t"                                                      \
    "smlad %[a2], %[" #w "], %[t], %[a2]\n\t"                                                               \
    "smlad %[a3], %[" #w "], %[x], %[a3]\n\t"

/* One group's slot address from its nibble (the nibble's bits given by `extract`, e.g. "ubfx ..., #8, #4"). */
#define MFD_SPARSE24_NIBBLE(extract)                                                                        \
    extract "\n\t"                                                                                          \
    "add %[slot], %[col], %[slot], lsl #4\n\t"
/* Four groups (two weight words) whose nibbles are bits 4i to 4i + 15 of %[bits], slots from `offset`. */
#define MFD_SPARSE24_QUAD(extract0, extract1, extract2, extract3, offset0, offset1, offset2, offset3)        \
    MFD_SPARSE24_WEIGHTS                                                                                    \
    MFD_SPARSE24_NIBBLE(extract0) MFD_SPARSE24_SLOT(w1, offset0)                                            \
    MFD_SPARSE24_NIBBLE(extract1) MFD_SPARSE24_SLOT(w2, offset1)                                            \
    MFD_SPARSE24_WEIGHTS                                                                                    \
    MFD_SPARSE24_NIBBLE(extract2) MFD_SPARSE24_SLOT(w1, offset2)                                            \
    MFD_SPARSE24_NIBBLE(extract3) MFD_SPARSE24_SLOT(w2, offset3)
/* The groups of a channel four at a time (k % 32 == 16) and eight at a time (k % 32 == 0): one positions
 * halfword or word a turn. */
#define MFD_SPARSE24_QUADS                                                                                  \
    "ldrh %[bits], [%[pos]], #2\n\t"                                                                        \
    MFD_SPARSE24_QUAD("and %[slot], %[bits], #15", "ubfx %[slot], %[bits], #4, #4",                          \
                      "ubfx %[slot], %[bits], #8, #4", "lsr %[slot], %[bits], #12", 0, 112, 224, 336)                                        \
    "add %[col], %[col], #448\n\t"
#define MFD_SPARSE24_OCTS                                                                                   \
    "ldr %[bits], [%[pos]], #4\n\t"                                                                         \
    MFD_SPARSE24_QUAD("and %[slot], %[bits], #15", "ubfx %[slot], %[bits], #4, #4",                          \
                      "ubfx %[slot], %[bits], #8, #4", "ubfx %[slot], %[bits], #12, #4", 0, 112, 224, 336)  \
    MFD_SPARSE24_QUAD("ubfx %[slot], %[bits], #16, #4", "ubfx %[slot], %[bits], #20, #4",                    \
                      "ubfx %[slot], %[bits], #24, #4", "lsr %[slot], %[bits], #28", 448, 560, 672, 784)    \
    "add %[col], %[col], #896\n\t"
/* A last pair of groups (k % 16 == 8): one positions byte. */
#define MFD_SPARSE24_PAIR                                                                                   \
    "ldrb %[bits], [%[pos]], #1\n\t"                                                                        \
    MFD_SPARSE24_WEIGHTS                                                                                    \
    MFD_SPARSE24_NIBBLE("and %[slot], %[bits], #15") MFD_SPARSE24_SLOT(w1, 0)                               \
    MFD_SPARSE24_NIBBLE("lsr %[slot], %[bits], #4") MFD_SPARSE24_SLOT(w2, 112)

/* mfd_sparse24_block for k % 16 == 0 or, with a `tail` of MFD_SPARSE24_PAIR, k % 16 == 8 (k >= 16, count > 0)
 * as one asm block, `groups` (MFD_SPARSE24_QUADS or _OCTS) a turn: per channel, its sums set to its folded bias, then its groups, each in 10 instructions (its slot's
 * address from its nibble in two, two LDRD and four SMLAD) plus, per two groups, one LDR and two SXTB16
 * for their weight words, and per turn a positions load and three instructions of loop: 42 instructions
 * per 32 MACs four groups a turn, 80 per 64 eight a turn. The loop takes fourteen registers, so the
 * block's own pointers stay in memory (`state`, its address on the stack). */
#define MFD_SPARSE24_BLOCK_ASM(name, groups, tail)                                                           \
    static inline void name(const uint32_t *column, const int8_t **values, const uint8_t **positions, int32_t k, \
                            const int32_t *folded, int32_t count, mfd_sums4 *sums)                          \
    {                                                                                                       \
        struct {                                                                                            \
            const int32_t *folded;  /* #0: the next channel's folded bias */                                \
            int32_t row;            /* #4: positions bytes per channel */                                   \
            const uint32_t *column; /* #8 */                                                                \
            mfd_sums4 *sums;        /* #12: the next channel's sums */                                      \
            mfd_sums4 *end;         /* #16 */                                                               \
        } state;                                                                                            \
        const int8_t *v = *values;                                                                          \
        const uint8_t *pos = *positions;                                                                    \
        void *frame = &state;                                                                               \
        uint32_t a0, a1, a2, a3, col, end, bits, w_first, w_second, x, slot;                                \
        state.folded = folded;                                                                              \
        state.row = k / 16 * 2;                                                                             \
        state.column = column;                                                                              \
        state.sums = sums;                                                                                  \
        state.end = sums + count;                                                                           \
        __asm__("str %[t], [sp, #-8]!\n\t"                                                                  \
                "mov %[slot], %[t]\n\t"                                                                    \
                "2:\n\t" /* %[slot]: &state */                                                              \
                "ldr %[col], [%[slot]]\n\t"                                                                 \
                "ldr %[a0], [%[col]], #4\n\t"                                                               \
                "str %[col], [%[slot]]\n\t"                                                                 \
                "mov %[a1], %[a0]\n\t"                                                                      \
                "mov %[a2], %[a0]\n\t"                                                                      \
                "mov %[a3], %[a0]\n\t"                                                                      \
                "ldr %[end], [%[slot], #4]\n\t"                                                             \
                "add %[end], %[pos], %[end]\n\t"                                                            \
                "ldr %[col], [%[slot], #8]\n\t"                                                             \
                "1:\n\t" groups "cmp %[pos], %[end]\n\t"                                                    \
                "bne 1b\n\t" tail                                                                           \
                "ldr %[slot], [sp]\n\t"                                                                     \
                "ldr %[t], [%[slot], #12]\n\t"                                                              \
                "strd %[a0], %[a1], [%[t]], #8\n\t"                                                         \
                "strd %[a2], %[a3], [%[t]], #8\n\t"                                                         \
                "str %[t], [%[slot], #12]\n\t"                                                              \
                "ldr %[x], [%[slot], #16]\n\t"                                                              \
                "cmp %[t], %[x]\n\t"                                                                        \
                "bne 2b\n\t"                                                                                \
                "add sp, sp, #8"                                                                            \
                : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [col] "=&r"(col),         \
                  [pos] "+r"(pos), [v] "+r"(v), [end] "=&r"(end), [bits] "=&r"(bits), [t] "+r"(frame),      \
                  [w1] "=&r"(w_first), [w2] "=&r"(w_second), [x] "=&r"(x), [slot] "=&r"(slot)               \
                :                                                                                           \
                : "cc", "memory");                                                                          \
        *values = v;                                                                                        \
        *positions = pos;                                                                                   \
    }
MFD_SPARSE24_BLOCK_ASM(mfd_sparse24_block_quads, MFD_SPARSE24_QUADS, "")
MFD_SPARSE24_BLOCK_ASM(mfd_sparse24_block_octs, MFD_SPARSE24_OCTS, "")
MFD_SPARSE24_BLOCK_ASM(mfd_sparse24_block_quads_pair, MFD_SPARSE24_QUADS, MFD_SPARSE24_PAIR)
#undef MFD_SPARSE24_BLOCK_ASM
#undef MFD_SPARSE24_PAIR
#undef MFD_SPARSE24_OCTS
#undef MFD_SPARSE24_QUADS
#undef MFD_SPARSE24_QUAD
#undef MFD_SPARSE24_NIBBLE
#undef MFD_SPARSE24_WEIGHTS
#undef MFD_SPARSE24_SLOT
#endif

/* The outputs of `count` channels (count > 0) of four pixels from their sums, when the activation range is
 * all of int8 (the saturation is the clamp) and each channel's one-step constants, the output zero point folded
 * into the rounding (mfd_one_step_of), are in `constants`: pixel p's at out + p * channels. Each
 * value requantized, saturated and stored as a byte: no packing, clamping or transposing of words. On a DSP core
 * one asm loop of 35 instructions a channel (its sums and constants in four loads, six instructions a value,
 * four byte stores and three of address and loop), fourteen registers. */
#if defined(MFD_ASM_LOOPS)
#define MFD_SPARSE24_VALUE(a)                                                                               \
    "and %[lo], %[" #a "], #0x80000000\n\t"                                                               \
    "orr %[lo], %[lo], #0x40000000\n\t"                                                                   \
    "add %[hi], %[round], %[" #a "], asr #31\n\t"                                                         \
    "smlal %[lo], %[hi], %[" #a "], %[m]\n\t"                                                             \
    "asr %[" #a "], %[hi], %[shift]\n\t"                                                                  \
    "ssat %[" #a "], #8, %[" #a "]\n\t"
static inline void mfd_sparse24_store(const mfd_sums4 *sums, const mfd_one_step *constants, int32_t count,
                                      int8_t *out, int32_t channels)
{
    const int8_t *end = out + count;
    uint32_t a0, a1, a2, a3, m, round, shift, lo, hi;
    __asm__ volatile("1:\n\t" /* volatile: its only effect is the stores */
            "ldrd %[a0], %[a1], [%[s]], #8\n\t"
            "ldrd %[a2], %[a3], [%[s]], #8\n\t"
            "ldr %[shift], [%[k], #8]\n\t"
            "ldrd %[m], %[round], [%[k]], #12\n\t"
            MFD_SPARSE24_VALUE(a0) MFD_SPARSE24_VALUE(a1) MFD_SPARSE24_VALUE(a2) MFD_SPARSE24_VALUE(a3)
            "strb %[a1], [%[out], %[c]]\n\t"
            "add %[lo], %[out], %[c], lsl #1\n\t"
            "strb %[a2], [%[lo]]\n\t"
            "strb %[a3], [%[lo], %[c]]\n\t"
            "strb %[a0], [%[out]], #1\n\t"
            "cmp %[out], %[end]\n\t"
            "bne 1b"
            : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [m] "=&r"(m), [round] "=&r"(round),
              [shift] "=&r"(shift), [lo] "=&r"(lo), [hi] "=&r"(hi), [s] "+r"(sums), [k] "+r"(constants), [out] "+r"(out)
            : [end] "r"(end), [c] "r"(channels)
            : "cc", "memory");
}
#undef MFD_SPARSE24_VALUE
#else
static inline void mfd_sparse24_store(const mfd_sums4 *sums, const mfd_one_step *constants, int32_t count,
                                      int8_t *out, int32_t channels)
{
    int32_t c;
    for (c = 0; c < count; ++c) {
        out[c] = (int8_t)mfd_sat8(mfd_requantize_one_step(sums[c].a0, constants[c]));
        out[c + channels] = (int8_t)mfd_sat8(mfd_requantize_one_step(sums[c].a1, constants[c]));
        out[c + 2 * channels] = (int8_t)mfd_sat8(mfd_requantize_one_step(sums[c].a2, constants[c]));
        out[c + 3 * channels] = (int8_t)mfd_sat8(mfd_requantize_one_step(sums[c].a3, constants[c]));
    }
}
#endif

/* sums[c] = folded[c] + channel c's weights . each pixel's inputs in the column, for `count` channels whose
 * values and positions start at *v and *pos (moved past them): the asm loop takes every register, so a
 * block of sums is stored and then requantized by a loop of its own. */
static inline void mfd_sparse24_block(const uint32_t *column, const int8_t **v, const uint8_t **pos, int32_t k,
                                      const int32_t *folded, int32_t count, mfd_sums4 *sums)
{
    int32_t c;
#if defined(MFD_ASM_LOOPS)
    if (k % 16 == 0 && k > 0 && count > 0) {
        if (k % 32 == 0) {
            mfd_sparse24_block_octs(column, v, pos, k, folded, count, sums);
        } else {
            mfd_sparse24_block_quads(column, v, pos, k, folded, count, sums);
        }
        return;
    }
    if (k % 16 == 8 && k > 16 && count > 0) { /* e.g. a 10 x 4 window of one input channel (k = 40) */
        mfd_sparse24_block_quads_pair(column, v, pos, k, folded, count, sums);
        return;
    }
#endif
    for (c = 0; c < count; ++c) {
        mfd_sums4 s;
        s.a0 = s.a1 = s.a2 = s.a3 = folded[c];
        sums[c] = mfd_sparse24_channel(column, v, pos, k, s);
    }
}

/* acc plus one channel's k weights (values v, positions pos) . one row of inputs x (int8, offset folded
 * into the bias): each input picked by its position and multiplied by its weight's lane (SMLAxB), no
 * column; a fully connected layer's single row leaves no pixels to share the position decode with. */
static inline int32_t mfd_sparse24_row(const int8_t *x, const int8_t *v, const uint8_t *pos, int32_t k, int32_t acc)
{
    const uint8_t *end = pos + k / 8;
    for (; pos < end; ++pos, v += 4, x += 8) {
        const uint32_t bits = *pos;
        const uint32_t w = mfd_read32(v);
        const uint32_t first = mfd_sxtb16(w), second = mfd_sxtb16_ror8(w); /* the two groups' values (interleaved) */
        acc = mfd_smlabb(first, (uint32_t)(int32_t)x[bits & 3u], acc);
        acc = mfd_smlatb(first, (uint32_t)(int32_t)x[bits >> 2 & 3u], acc);
        acc = mfd_smlabb(second, (uint32_t)(int32_t)x[4u + (bits >> 4 & 3u)], acc);
        acc = mfd_smlatb(second, (uint32_t)(int32_t)x[4u + (bits >> 6)], acc);
    }
    if (k % 8 != 0) { /* a last lone group */
        const uint32_t bits = *pos;
        acc = mf_wrap_add(acc, v[0] * x[bits & 3u]);
        acc = mf_wrap_add(acc, v[1] * x[bits >> 2 & 3u]);
    }
    return acc;
}

#endif /* MFD_SPARSE24_H */
