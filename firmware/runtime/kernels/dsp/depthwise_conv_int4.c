/* DEPTHWISE_CONV_2D with INT4 weights on cores with the DSP extension (it
 * replaces kernels/depthwise_conv_int4.c in such builds), bit for bit the
 * portable INT4 loop.
 *
 * Depth multiplier 1 and channels in fours: per output row and group of
 * four channels, the filter's taps are unpacked once (two nibbles a byte,
 * four channels a halfword) into int16 lanes of 16 times each weight
 * (mfd_int4.h), (c0, c2) and (c1, c3), on the stack; every pixel of the row
 * then takes a tap in one word of inputs, two SXTAB16 (input offset added)
 * and four SMLAxy, and the four 16-times sums are shifted back exactly.
 * Taps outside the input are skipped, as the reference does. Other
 * multipliers and depths, and filters of more than DW_INT4_TAPS taps, take
 * the portable loop. */
#include "dsp_affine.h"
#include "mfd_int4.h"
#include "../mf_int4.h"

#define mf_depthwise_conv_int4_eval mfd_depthwise_conv_int4_eval_reference
#include "../depthwise_conv_int4.c"
#undef mf_depthwise_conv_int4_eval

enum { DW_INT4_TAPS = 49 }; /* up to 7 x 7: 392 bytes of unpacked lanes on the stack */

/* Four channels' weights at every tap (halfwords of the packed filter, `step` bytes apart) as lanes:
 * lanes[2 t] = 16 x (c0, c2), lanes[2 t + 1] = 16 x (c1, c3). */
static void dw_int4_unpack(const uint8_t *weights, size_t step, int32_t taps, uint32_t *lanes)
{
    int32_t t;
    for (t = 0; t < taps; ++t, weights += step) {
        const uint32_t half = (uint32_t)weights[0] | (uint32_t)weights[1] << 8; /* nibbles c0 c1 c2 c3 */
        const uint32_t spread = (half | half << 8) & 0x00FF00FFu;             /* c0 c1 in byte 0, c2 c3 in byte 2 */
        lanes[2 * t] = mfd_sxtb16((spread << 4) & 0x00F000F0u);
        lanes[2 * t + 1] = mfd_sxtb16(spread & 0x00F000F0u);
    }
}

mf_status mf_depthwise_conv_int4_eval(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], channels = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2];
    const int32_t out_h = output->dims[1], out_w = output->dims[2];
    const uint32_t offsets = mfd_dup16(d->input_offset);
    const size_t tap_step = (size_t)d->dilation_w * (size_t)input->dims[3]; /* bytes from a tap to the next across */
    const mfd_out o = mfd_out_for(d->output_zero_point, d->act_min, d->act_max);
    const mf_requant *requant;
    uint32_t lanes[2 * DW_INT4_TAPS];
    int32_t b;
    if (d->channels_per_group != 1 || channels % 4 != 0 || f_h * f_w > DW_INT4_TAPS ||
        !mfd_int8_offset_ok(input->zero_point)) {
        return mfd_depthwise_conv_int4_eval_reference(op);
    }
    requant = mf_affine_table(op, d);
    for (b = 0; b < input->dims[0]; ++b) {
        const int8_t *image = (const int8_t *)input->data + (size_t)b * in_h * in_w * channels;
        int32_t oy;
        for (oy = 0; oy < out_h; ++oy) { /* row by row (mf_overlap) */
            const int32_t in_y0 = oy * d->stride_h - d->pad_h;
            int8_t *out_row = (int8_t *)output->data + ((size_t)b * out_h + oy) * out_w * channels;
            int32_t fy0, fy1, c;
            mf_taps_inside(in_y0, d->dilation_h, in_h, f_h, &fy0, &fy1);
            for (c = 0; c < channels; c += 4) {
                const mfd_requant q0 = dsp_requant(requant[c * d->channel_step]);
                const mfd_requant q1 = dsp_requant(requant[(c + 1) * d->channel_step]);
                const mfd_requant q2 = dsp_requant(requant[(c + 2) * d->channel_step]);
                const mfd_requant q3 = dsp_requant(requant[(c + 3) * d->channel_step]);
                const int32_t b0 = bias != NULL ? bias[c] : 0, b1 = bias != NULL ? bias[c + 1] : 0;
                const int32_t b2 = bias != NULL ? bias[c + 2] : 0, b3 = bias != NULL ? bias[c + 3] : 0;
                int32_t ox;
                dw_int4_unpack((const uint8_t *)filter->data + c / 2, (size_t)channels / 2, f_h * f_w, lanes);
                for (ox = 0; ox < out_w; ++ox) {
                    const int32_t in_x0 = ox * d->stride_w - d->pad_w;
                    int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
                    int32_t fx0, fx1, fy;
                    mf_taps_inside(in_x0, d->dilation_w, in_w, f_w, &fx0, &fx1);
                    for (fy = fy0; fy < fy1; ++fy) {
                        const int8_t *src =
                            image + ((size_t)(in_y0 + d->dilation_h * fy) * in_w + in_x0 + d->dilation_w * fx0) * channels + c;
                        const uint32_t *w = &lanes[2 * (fy * f_w + fx0)];
                        const uint32_t *end = &lanes[2 * (fy * f_w + fx1)];
                        for (; w < end; w += 2, src += tap_step) {
                            const uint32_t x = mfd_read32(src);
                            const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
                            a0 = mfd_smlabb(w[0], x_even, a0);
                            a2 = mfd_smlatt(w[0], x_even, a2);
                            a1 = mfd_smlabb(w[1], x_odd, a1);
                            a3 = mfd_smlatt(w[1], x_odd, a3);
                        }
                    }
                    mfd_write32(out_row + (size_t)ox * channels + c,
                                mfd_outputs4(mf_wrap_add(a0 >> 4, b0), mf_wrap_add(a1 >> 4, b1), mf_wrap_add(a2 >> 4, b2),
                                             mf_wrap_add(a3 >> 4, b3), &q0, &q1, &q2, &q3, o));
                }
            }
        }
    }
    return MF_OK;
}
