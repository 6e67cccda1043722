/* DEPTHWISE_CONV_2D for cores with the DSP extension, bit for bit the
 * portable kernel's output (it replaces kernels/depthwise_conv.c in such
 * builds and reuses its checks).
 *
 * Weights and (with depth multiplier 1) inputs are contiguous along the
 * channels, so four channels come in one word: SXTB16/SXTAB16 widen them to
 * int16 lanes (the input offset added on the way) and SMLABB/SMLATT
 * accumulate each lane into its own channel. With one input channel (any
 * multiplier, as in micro_speech) the input value is the same for every
 * channel and sits in both lanes. Other multipliers run the portable loop.
 * Taps outside the input are skipped, as the reference does. Scratch: the
 * per-channel requantization. */
#include "mfd_dsp.h"

#define mf_depthwise_conv_prepare mfd_depthwise_conv_prepare_reference
#define mf_depthwise_conv_eval mfd_depthwise_conv_eval_reference
#include "../depthwise_conv.c"
#undef mf_depthwise_conv_prepare
#undef mf_depthwise_conv_eval

mf_status mf_depthwise_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_status status = mfd_depthwise_conv_prepare_reference(op, scratch_bytes);
    if (status == MF_OK) {
        *scratch_bytes = (size_t)op->outputs[0].dims[3] * sizeof(mfd_requant);
    }
    return status;
}

/* The taps [*first, *end) of a filter axis that land inside the input (a contiguous run). */
static void mfd_valid_taps(int32_t start, int32_t dilation, int32_t filter_size, int32_t in_size, int32_t *first,
                           int32_t *end)
{
    int32_t f = 0;
    while (f < filter_size && start + dilation * f < 0) {
        ++f;
    }
    *first = f;
    while (f < filter_size && start + dilation * f < in_size) {
        ++f;
    }
    *end = f;
}

typedef struct mfd_dw_window {
    const int8_t *in;      /* the batch's input */
    ptrdiff_t origin;      /* offset of input pixel (in_y0, in_x0), maybe outside: only valid taps are read */
    int32_t row_stride;    /* bytes between input rows */
    int32_t tap_x_stride;  /* bytes between horizontal taps */
    int32_t tap_y_stride;  /* bytes between vertical taps */
    int32_t fy0, fy1, fx0, fx1;
} mfd_dw_window;

/* Channels oc..oc+3 of one output pixel; `broadcast`: one input channel for all. */
static inline __attribute__((always_inline)) void mfd_dw_quad(const mfd_dw_window *win, const int8_t *w, int32_t f_w,
                                                              int32_t out_c, int32_t oc, int broadcast,
                                                              int32_t input_offset, int32_t acc[4])
{
    const uint32_t offsets = mfd_dup16(input_offset);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t fy;
    for (fy = win->fy0; fy < win->fy1; ++fy) {
        const int8_t *src = win->in + (win->origin + fy * win->tap_y_stride + win->fx0 * win->tap_x_stride + (broadcast ? 0 : oc));
        const int8_t *wt = w + ((size_t)fy * f_w + win->fx0) * out_c + oc;
        int32_t fx;
        for (fx = win->fx0; fx < win->fx1; ++fx, src += win->tap_x_stride, wt += out_c) {
            const uint32_t weights = mfd_read32(wt);
            const uint32_t w_even = mfd_sxtb16(weights), w_odd = mfd_sxtb16(mfd_ror8(weights));
            uint32_t x_even;
            uint32_t x_odd;
            if (broadcast) {
                x_even = x_odd = mfd_dup16(*src + input_offset);
            } else {
                const uint32_t x = mfd_read32(src);
                x_even = mfd_sxtab16(offsets, x);
                x_odd = mfd_sxtab16(offsets, mfd_ror8(x));
            }
            a0 = mfd_smlabb(w_even, x_even, a0);
            a2 = mfd_smlatt(w_even, x_even, a2);
            a1 = mfd_smlabb(w_odd, x_odd, a1);
            a3 = mfd_smlatt(w_odd, x_odd, a3);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
}

mf_status mf_depthwise_conv_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *in = (const int8_t *)input->data;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];
    const int32_t f_h = filter->dims[1], f_w = filter->dims[2];
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t depth_multiplier = out_c / (in_c > 0 ? in_c : 1);
    const int32_t input_offset = -input->zero_point;
    const int broadcast = in_c == 1;
    const int32_t quads = (depth_multiplier == 1 || broadcast) ? out_c & ~3 : 0;
    mfd_requant *requant = (mfd_requant *)op->scratch;
    mfd_dw_window win;
    dw_geometry g;
    int32_t oc;
    int32_t b;
    mf_status status = dw_check(op, &g);
    if (status != MF_OK) {
        return status;
    }
    if (quads == 0 || !mfd_int8_offset_ok(input->zero_point)) {
        return mfd_depthwise_conv_eval_reference(op);
    }
    if (requant == NULL) {
        return MF_ERR_BAD_ARGUMENT;
    }
    for (oc = 0; oc < out_c; ++oc) {
        requant[oc] = mfd_requant_for(input, filter, oc, output);
    }
    win.row_stride = in_w * in_c;
    win.tap_x_stride = g.dilation_w * in_c;
    win.tap_y_stride = g.dilation_h * win.row_stride;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        win.in = in + (size_t)b * in_h * win.row_stride;
        /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * g.stride_h - g.pad_h;
            int32_t ox;
            mfd_valid_taps(in_y0, g.dilation_h, f_h, in_h, &win.fy0, &win.fy1);
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t in_x0 = ox * g.stride_w - g.pad_w;
                int8_t *out_pixel = out + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                mfd_valid_taps(in_x0, g.dilation_w, f_w, in_w, &win.fx0, &win.fx1);
                win.origin = (ptrdiff_t)in_y0 * win.row_stride + (ptrdiff_t)in_x0 * in_c;
                for (oc = 0; oc < out_c; oc += 4) {
                    int32_t acc[4];
                    int32_t lane;
                    const int32_t lanes = oc < quads ? 4 : out_c - oc;
                    for (lane = 0; lane < lanes; ++lane) {
                        acc[lane] = bias != NULL ? bias[oc + lane] : 0;
                    }
                    if (lanes == 4 && broadcast) {
                        mfd_dw_quad(&win, w, f_w, out_c, oc, 1, input_offset, acc);
                    } else if (lanes == 4) {
                        mfd_dw_quad(&win, w, f_w, out_c, oc, 0, input_offset, acc);
                    } else {
                        for (lane = 0; lane < lanes; ++lane) {
                            const int32_t channel = oc + lane;
                            int32_t fy;
                            for (fy = win.fy0; fy < win.fy1; ++fy) {
                                int32_t fx;
                                for (fx = win.fx0; fx < win.fx1; ++fx) {
                                    const int32_t value = win.in[win.origin + fy * win.tap_y_stride + fx * win.tap_x_stride +
                                                                 channel / depth_multiplier];
                                    acc[lane] = mf_wrap_add(acc[lane],
                                                            w[((size_t)fy * f_w + fx) * out_c + channel] * (value + input_offset));
                                }
                            }
                        }
                    }
                    for (lane = 0; lane < lanes; ++lane) {
                        out_pixel[oc + lane] = mfd_output(acc[lane], requant[oc + lane], output->zero_point, g.act_min, g.act_max);
                    }
                }
            }
        }
    }
    return MF_OK;
}
