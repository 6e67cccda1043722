/* A DEPTHWISE_CONV_2D whose output only a FULLY_CONNECTED reads, run as one
 * op (MF_OP_DEPTHWISE_FC): the engine's planner gives the depthwise output no
 * buffer. Eval runs the depthwise kernel's own loop (the variant its record
 * names) on bands of a few output rows into the scratch, and adds each band
 * into the fully connected op's int32 sums, then requantizes them once: the
 * sums are exact, so outputs equal the two ops run one after the other.
 *
 * The fused op's tensors: inputs 0-2 the depthwise's (input, filter, bias or
 * absent), 3 the depthwise output (no data), 4-5 the fully connected filter
 * and bias (or absent); output 0 the fully connected output. Its record is
 * mf_depthwise_fc_data, then the depthwise record, then (prepared images,
 * where it takes fewer bytes than the filter) the fully connected filter
 * coded, then the fully connected record, each as the kernel's own prepare
 * wrote it.
 *
 * Coded filter (prepared images, a dense fully connected filter of zero point
 * 0, whose biases are folded): weights in -63..63 take 7 bits, the others
 * the code -64 and their int8 value in a list of exceptions. Layout: int32
 * first exception of each unit [units], then each unit's codes (weight k at
 * bit 7k, groups of eight weights in seven bytes, ceil(depth / 8) groups a
 * unit), one zero byte, then the exceptions in order (unit by unit). Eval
 * decodes a group of eight with constant shifts, so a weight costs a few
 * instructions more than a plain int8 load; the image drops the dense filter. */
#ifndef MF_DEPTHWISE_FC_H
#define MF_DEPTHWISE_FC_H

#include "mf_affine.h"

enum { MF_DEPTHWISE_FC_INPUTS = 6 };

typedef struct mf_depthwise_fc_data {
    int32_t fc_at;           /* bytes from this record's start to the fully connected record */
    int32_t coded_at;        /* ... to the coded fully connected filter, 0: the dense tensor is read */
    int32_t band_rows;       /* depthwise output rows per band */
    int32_t fc_scratch_at;   /* bytes from the scratch's start to the fully connected op's (the depthwise's is at 0) */
    int32_t band_at;         /* ... to the band of depthwise output rows */
    int32_t sums_at;         /* ... to the fully connected sums (int32, one per unit), then (coded filters) each
                              * unit's next exception (int32) */
    mf_affine_data interior; /* the depthwise record of the bands after the first: pad_h 0, the input moved down instead */
} mf_depthwise_fc_data;

/* The depthwise record, right after the fused one. */
static inline const mf_affine_data *mf_depthwise_fc_depthwise(const mf_depthwise_fc_data *data)
{
    return (const mf_affine_data *)(const void *)(data + 1);
}

static inline const mf_affine_data *mf_depthwise_fc_fully_connected(const mf_depthwise_fc_data *data)
{
    return (const mf_affine_data *)(const void *)((const uint8_t *)data + data->fc_at);
}

/* The prepared image's kernel key variant of a fused record: the depthwise loop's. */
static inline int32_t mf_depthwise_fc_variant(const mf_depthwise_fc_data *data)
{
    return MF_EVAL_LOOP(mf_depthwise_fc_depthwise(data)->variant);
}

/* Whether eval reads input `k` (the fully connected filter may be coded, its bias folded into its record). */
static inline int mf_depthwise_fc_reads_input(const mf_depthwise_fc_data *data, int32_t k)
{
    return k == 4 ? data->coded_at == 0 : k != 5 || mf_affine_reads_input(mf_depthwise_fc_fully_connected(data), 2);
}

/* Eval with the depthwise loop `depthwise` (an eval of the depthwise kernel set built). */
mf_status mf_depthwise_fc_run(const mf_op *op, mf_eval_fn depthwise);

#endif /* MF_DEPTHWISE_FC_H */
