/* Sparse filters of CONV_2D and FULLY_CONNECTED in prepared images: prepare
 * measures the int8 (or INT4) filter and, where an encoding pays (2:4: always 5/8 of
 * the bytes; a bitmap: at most half the dense bytes, as walking its bits is
 * slower than the dense loops), writes it into the op-data record (flash) and
 * the image drops the dense tensor; eval then multiplies only the stored (nonzero) weights. The
 * accumulation of the remaining products is exact in int32 and the
 * requantization unchanged, so outputs equal the dense kernel's.
 *
 * The filter is C output channels of K weights each ([C][K], K = depth for
 * fully connected, f_h x f_w x f_c for conv). Encoded weights (at
 * mf_affine_data.weights_at, 4-byte aligned):
 *   bias_folded:  int32 bias[C] + input offset x sum of channel c's weights
 *                 (fully connected, and 2:4 conv that is 1x1 or ungrouped: eval
 *                 reads each output's K inputs as one row, a window's gathered
 *                 with the input zero point in its padding, so no offset per
 *                 MAC); a dense fully connected filter (zero point 0) gets these alone
 *   2:4 (K % 4 == 0 and every group of four of a channel's K weights holds at most two
 *                 nonzeros; grouped windows: also f_c % 4 == 0, groups within a tap):
 *                 int8 values[C][K/2], then positions[C][ceil(K/8)]: group g's
 *                 nibble at byte g/2 (low nibble for even g), first position in bits 0-1,
 *                 below the second in bits 2-3 (one of six nibbles: 4, 8, 9, 12, 13, 14;
 *                 a group with fewer nonzeros stores zeros at its first free positions);
 *                 with folded biases the values of each whole pair of groups 2j, 2j + 1 are
 *                 interleaved: first of 2j, first of 2j + 1, second of 2j, second of 2j + 1
 *                 (SXTB16 then widens one group's two values into one int16x2 word)
 *   2:4 INT4 (an INT4 conv filter, 2:4 as above, biases folded, 1x1 or ungrouped):
 *                 values[C][K/4], a byte per group (first value in the low nibble,
 *                 4-bit two's complement), then the positions as above: 3/4 of
 *                 the packed INT4 bytes; the portable loops in both kernel sets
 *   depthwise 2:4 (a DEPTHWISE_CONV_2D filter [1][h][w][C], here one channel of K = h x w x C
 *                 weights: groups of four channels at each tap; C % 4 == 0): values and positions
 *                 as 2:4 above, no folded biases; eval expands them into the dense filter in the
 *                 op's scratch (K bytes before the loop's own scratch) and runs the kernel set's
 *                 dense loop on it, so the output is the dense loop's bit for bit
 *   bitmap:       uint32 first value of each channel [C], bitmap[C][ceil(K/8)]
 *                 (bit k%8 of byte k/8: weight k is nonzero), then the nonzero values
 */
#ifndef MF_SPARSE_H
#define MF_SPARSE_H

#include "mf_affine.h"

/* Prepare (records in flash): chooses head->weights and head->bias_folded;
 * returns the encoded bytes, 0 for dense (but fully connected's folded biases). */
size_t mf_sparse_plan(const mf_op *op, mf_affine_kind kind, mf_affine_data *head);

/* Prepare of a conv whose record *head is about to be stored: the scratch bytes of four pixels' gathered
 * windows when its filter, larger than 1x1, will be stored in 2:4 with folded biases, else 0. */
size_t mf_sparse_windows_bytes(const mf_op *op, const mf_affine_data *head);

/* Prepare of a depthwise conv whose record is in flash: the scratch bytes of its dense filter when mf_sparse_plan
 * will store it in 2:4 (eval expands it there, mf_sparse_run_expanded), else 0. */
size_t mf_sparse_dense_filter_bytes(const mf_op *op, mf_affine_kind kind);

/* Eval of a depthwise conv with a 2:4 filter: expands it into the start of the scratch and runs `dense`
 * (a dense loop of the kernel set) on the op with that filter and the rest of the scratch. */
mf_status mf_sparse_run_expanded(const mf_op *op, mf_status (*dense)(const mf_op *));

/* Prepare: writes the encoding mf_sparse_plan chose into `encoded`. */
void mf_sparse_encode(const mf_op *op, const mf_affine_data *head, uint8_t *encoded);

/* Eval of a 2:4 filter with folded biases: up to four pixels (count 1 to 4)
 * whose inputs start at x[i], outputs at out + i * C, every channel. Four at
 * a time, so each channel's positions are decoded once for four pixels. */
void mf_sparse24_pixels(const mf_op *op, const mf_affine_data *d, const mf_requant *requant, const int8_t *const x[4],
                        int32_t count, int8_t *out);

/* Eval: where channel c's encoded weights are read, from its first weight on. */
typedef struct mf_sparse_cursor {
    const int8_t *values; /* the next stored value */
    const uint8_t *bits;  /* the channel's positions (2:4) or bitmap */
    int32_t k;            /* bitmaps: the next weight of the channel */
} mf_sparse_cursor;

mf_sparse_cursor mf_sparse_channel(const mf_op *op, const mf_affine_data *d, int32_t c);

/* Eval, bitmaps: acc plus the next n weights against (x[i] + input offset);
 * x NULL (a tap in the padding) skips them. */
int32_t mf_bitmap_tap(const mf_affine_data *d, mf_sparse_cursor *cursor, const int8_t *x, int32_t n, int32_t acc);

/* Eval, 2:4: acc plus `groups` groups of four of a channel from its group
 * `first` on, against (x[i] + input offset). Inline: the hot loop of 2:4 convolutions. */
static inline int32_t mf_sparse24_tap(const mf_sparse_cursor *channel, int32_t first, int32_t groups, const int8_t *x,
                                      int32_t input_offset, int32_t acc)
{
    const int8_t *v = channel->values + 2 * first;
    const uint8_t *p = channel->bits + first / 2;
    const uint8_t *end = channel->bits + (first + groups) / 2; /* the byte of the last group when it is alone */
    uint32_t sum = (uint32_t)acc;
    uint32_t bits;
    if (first % 2 != 0) { /* a first group in the high nibble */
        bits = (uint32_t)*p++ >> 4;
        sum += (uint32_t)(v[0] * (x[bits & 3u] + input_offset) + v[1] * (x[bits >> 2] + input_offset));
        v += 2;
        x += 4;
    }
    for (; p < end; ++p, v += 4, x += 8) { /* two groups a byte */
        bits = *p;
        sum += (uint32_t)(v[0] * (x[bits & 3u] + input_offset) + v[1] * (x[bits >> 2 & 3u] + input_offset) +
                          v[2] * (x[4u + (bits >> 4 & 3u)] + input_offset) + v[3] * (x[4u + (bits >> 6)] + input_offset));
    }
    if ((first + groups) % 2 != 0) { /* a last group in the low nibble */
        bits = *p;
        sum += (uint32_t)(v[0] * (x[bits & 3u] + input_offset) + v[1] * (x[bits >> 2 & 3u] + input_offset));
    }
    return (int32_t)sum;
}

#endif /* MF_SPARSE_H */
