/* DEPTHWISE_CONV_2D fused with its FULLY_CONNECTED (../depthwise_fc.c) for
 * cores with the DSP extension: one eval per loop of the DSP depthwise
 * kernels, so a prepared firmware links only the loop its image runs, and
 * each band added to the sums four weights a word (SXTAB16 widens them with
 * the offset added, SMLAD does two MACs). */
#include "mfd_dsp.h"

/* ../depthwise_fc.c's mf_depthwise_fc_add: offsets of int8 zero points keep
 * each widened lane within int16, as SMLAD needs; others run one MAC at a time. */
static void mfd_depthwise_fc_add(const int8_t *w, int32_t depth, int32_t units, const int8_t *x, int32_t n,
                                 int32_t filter_offset, int32_t input_offset, int32_t *sums)
{
    const int lanes = filter_offset >= -127 && filter_offset <= 128 && input_offset >= -127 && input_offset <= 128;
    const uint32_t w_offsets = mfd_dup16(filter_offset), x_offsets = mfd_dup16(input_offset);
    int32_t u;
    for (u = 0; u < units; ++u, w += depth) {
        const int8_t *row = w;
        const int8_t *in = x;
        int32_t k = n;
        int32_t acc = sums[u];
        for (; lanes && k >= 4; k -= 4, row += 4, in += 4) {
            const uint32_t weights = mfd_read32(row), values = mfd_read32(in);
            acc = mfd_smlad(mfd_sxtab16(w_offsets, weights), mfd_sxtab16(x_offsets, values), acc);
            acc = mfd_smlad(mfd_sxtab16_ror8(w_offsets, weights), mfd_sxtab16_ror8(x_offsets, values), acc);
        }
        for (; k > 0; --k) {
            acc = mf_wrap_add(acc, ((int32_t)*row++ + filter_offset) * ((int32_t)*in++ + input_offset));
        }
        sums[u] = acc;
    }
}
#define MF_DEPTHWISE_FC_ADD mfd_depthwise_fc_add

#include "../depthwise_fc.c"

/* The fused eval over one DSP depthwise loop (record variant). */
#define MFD_DEPTHWISE_FC(name, loop) \
    mf_status name(const mf_op *op) { return mf_depthwise_fc_run(op, loop); }

MFD_DEPTHWISE_FC(mfd_depthwise_fc_eval_channels, mfd_depthwise_eval_channels)
MFD_DEPTHWISE_FC(mfd_depthwise_fc_eval_one_input_channel, mfd_depthwise_eval_one_input_channel)
MFD_DEPTHWISE_FC(mfd_depthwise_fc_eval_3x3, mfd_depthwise_eval_3x3)
MFD_DEPTHWISE_FC(mfd_depthwise_fc_eval_3x3_nhwc, mfd_depthwise_eval_3x3_nhwc)
