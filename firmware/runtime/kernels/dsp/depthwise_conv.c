/* DEPTHWISE_CONV_2D for cores with the DSP extension, bit for bit the
 * portable kernel's output (it replaces kernels/depthwise_conv.c in such
 * builds and shares its prologue).
 *
 * 3 x 3 filters without dilation, any stride and depth multiplier, run the
 * channel-major loops of mfd_depthwise.h (scratch: their ring of input rows,
 * at most MFD_DW_RING_MAX bytes; wider layers take the next path), but
 * outputs narrower than MFD_DW_MIN_WIDTH with multiplier 1 the NHWC loops of
 * mfd_depthwise_nhwc.h when their frame fits the layer (checked here once, so
 * they carry no fallback), unless a prepared image's build chose the
 * channel-major loops for them too (MF_CHOICE_NARROW_DEPTHWISE_CHANNEL_MAJOR:
 * one loop family linked, for a code budget). Other
 * filters with depth multiplier 1: weights and inputs are contiguous along
 * the channels, so four channels come in one word: SXTB16/SXTAB16 widen them
 * to int16 lanes (the input offset added on the way) and SMLABB/SMLATT
 * accumulate each lane into its own channel; taps outside the input are
 * skipped, as the reference does. One input channel (any multiplier:
 * micro_speech) is a convolution with one input channel: the weights,
 * transposed into the scratch buffer, run through mfd_gemm.h. Other
 * multipliers run the portable loop. The per-channel requantization is in the
 * op-data record. */
#include "dsp_affine.h"
#include "mfd_depthwise.h"
#include "mfd_depthwise_nhwc.h"
#include "mfd_gemm.h"

#define mf_depthwise_conv_prepare mfd_depthwise_conv_prepare_reference
#define mf_depthwise_conv_eval_dense mfd_depthwise_conv_eval_dense_reference
#include "../depthwise_conv.c"
#undef mf_depthwise_conv_prepare
#undef mf_depthwise_conv_eval_dense


/* The largest ring of the 3 x 3 loops: the scratch buffer is shared by all ops and counts in the arena. */
#define MFD_DW_RING_MAX 4096u
/* Narrower 3 x 3 layers with multiplier 1 take the NHWC loops (mfd_depthwise_nhwc.h), unless the image's build chose
 * otherwise (MF_CHOICE_NARROW_DEPTHWISE_CHANNEL_MAJOR). */
#define MFD_DW_MIN_WIDTH 6

/* Whether a 3 x 3, multiplier-1 layer fits the NHWC loops, which carry no fallback: its shape, and every channel's
 * requantization (as mf_affine_store tabulates it). */
static int mfd_dw_nhwc_fits(const mf_op *op, const mf_affine_data *head)
{
    const mfd_dw3x3_nhwc shape = {NULL, NULL, NULL, NULL, op->inputs[0].dims[1], op->inputs[0].dims[2],
                                  op->inputs[0].dims[3], head->stride_h, head->stride_w, head->pad_h, head->pad_w,
                                  0, mfd_out_for(0, INT8_MIN, INT8_MAX)};
    int32_t c;
    if (!mfd_dw3x3_nhwc_fits(&shape, op->outputs[0].dims[1], op->outputs[0].dims[2])) {
        return 0;
    }
    for (c = 0; c < head->channels; ++c) {
        const mf_requant q = mf_requant_of_scales(op->inputs[0].scale, mf_tensor_scale_at(&op->inputs[1], c),
                                                  op->outputs[0].scale);
        if (!mfd_one_step_folds(q.right)) {
            return 0;
        }
    }
    return 1;
}

mf_status mf_depthwise_conv_prepare(const mf_op *op, size_t *scratch_bytes)
{
    const mf_tensor *filter = &op->inputs[1];
    const int32_t taps = filter->dims[1] * filter->dims[2];
    mf_affine_data head;
    const mf_status status = mf_affine_check(op, MF_AFFINE_DEPTHWISE, &head);
    size_t ring = MFD_DW_RING_MAX + 1u;
    int32_t slots = 0;
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    if (head.weights != MF_WEIGHTS_INT8 || !mfd_int8_offset_ok(op->inputs[0].zero_point)) {
        return mf_affine_prepare(op, MF_AFFINE_DEPTHWISE, scratch_bytes); /* INT4 weights: the portable INT4 loop */
    }
    /* A width past 1024 outputs never fits the ring (and keeps its size arithmetic in int32). */
    if (op->outputs[0].dims[2] <= 1024) {
        mfd_dw3x3 geometry = {NULL, NULL, NULL, NULL, op->inputs[0].dims[1], op->inputs[0].dims[2],
                              op->inputs[0].dims[3], head.channels_per_group, op->outputs[0].dims[1],
                              op->outputs[0].dims[2], head.stride_h, head.stride_w, head.pad_h, head.pad_w, 0, 0,
                              mfd_out_for(0, INT8_MIN, INT8_MAX)};
        slots = geometry.slots = mfd_dw3x3_slots(&geometry);
        ring = mfd_dw3x3_scratch_bytes(&geometry);
    }
    if (filter->dims[1] == 3 && filter->dims[2] == 3 && head.dilation_h == 1 && head.dilation_w == 1 &&
        head.channels_per_group == 1 && op->outputs[0].dims[2] < MFD_DW_MIN_WIDTH &&
        !(mf_op_image_choices(op) & MF_CHOICE_NARROW_DEPTHWISE_CHANNEL_MAJOR) && mfd_dw_nhwc_fits(op, &head)) {
        head.variant = MFD_DW_3X3_NHWC; /* row by row: the overlap mf_affine_check set holds */
    } else if (filter->dims[1] == 3 && filter->dims[2] == 3 && head.dilation_h == 1 && head.dilation_w == 1 &&
               ring <= MFD_DW_RING_MAX) {
        head.variant = MFD_DW_3X3;
        head.ring_slots = (int16_t)slots; /* eval reads it (and links no 64-bit division) */
        *scratch_bytes = ring;
        if (op->overlap != NULL) {
            /* Channel group by channel group, so the output may only replace its input in place (one batch,
             * multiplier 1, no wider than the input, pad_h <= 2): output row y's bytes then land on the same
             * channels' input rows up to y, which the ring already holds (mfd_depthwise.h). */
            op->overlap->allowed = op->inputs[0].dims[0] == 1 && head.channels_per_group == 1 && head.pad_h <= 2 &&
                                   op->outputs[0].dims[2] <= op->inputs[0].dims[2];
            op->overlap->gap = 0;
            op->overlap->exact = 1;
        }
    } else if (op->inputs[0].dims[3] == 1) {
        head.variant = MFD_DW_ONE_INPUT_CHANNEL;
        *scratch_bytes = (((size_t)head.channels * (size_t)taps + 3u) & ~(size_t)3u) + mfd_columns_bytes(taps);
    } else if (head.channels_per_group == 1) {
        head.variant = MFD_DW_CHANNELS;
    } else {
        return mf_affine_prepare(op, MF_AFFINE_DEPTHWISE, scratch_bytes);
    }
    *scratch_bytes += mf_affine_plan_table(op, MF_AFFINE_DEPTHWISE, &head, 1);
    return mf_affine_store(op, MF_AFFINE_DEPTHWISE, &head);
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

/* Channels oc..oc+3 of one output pixel, depth multiplier 1. */
static void mfd_dw_quad(const mfd_dw_window *win, const int8_t *w, int32_t f_w, int32_t out_c, int32_t oc,
                        int32_t input_offset, int32_t acc[4])
{
    const uint32_t offsets = mfd_dup16(input_offset);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t fy;
    for (fy = win->fy0; fy < win->fy1; ++fy) {
        const int8_t *src = win->in + (win->origin + fy * win->tap_y_stride + win->fx0 * win->tap_x_stride + oc);
        const int8_t *wt = w + ((size_t)fy * f_w + win->fx0) * out_c + oc;
        int32_t fx;
        for (fx = win->fx0; fx < win->fx1; ++fx, src += win->tap_x_stride, wt += out_c) {
            const uint32_t weights = mfd_read32(wt), x = mfd_read32(src);
            const uint32_t w_even = mfd_sxtb16(weights), w_odd = mfd_sxtb16_ror8(weights);
            const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
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

/* Channels oc..oc+3 of two output pixels `step` bytes apart in the input
 * with the same valid taps: each weight word is unpacked once for both. */
static void mfd_dw_quad_pair(const mfd_dw_window *win, ptrdiff_t step, const int8_t *w, int32_t f_w, int32_t out_c,
                             int32_t oc, int32_t input_offset, int32_t acc[8])
{
    const uint32_t offsets = mfd_dup16(input_offset);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    int32_t b0 = acc[4], b1 = acc[5], b2 = acc[6], b3 = acc[7];
    int32_t fy;
    for (fy = win->fy0; fy < win->fy1; ++fy) {
        const int8_t *src = win->in + (win->origin + fy * win->tap_y_stride + win->fx0 * win->tap_x_stride + oc);
        const int8_t *wt = w + ((size_t)fy * f_w + win->fx0) * out_c + oc;
        int32_t fx;
        for (fx = win->fx0; fx < win->fx1; ++fx, src += win->tap_x_stride, wt += out_c) {
            const uint32_t weights = mfd_read32(wt), x = mfd_read32(src), y = mfd_read32(src + step);
            const uint32_t w_even = mfd_sxtb16(weights), w_odd = mfd_sxtb16_ror8(weights);
            const uint32_t x_even = mfd_sxtab16(offsets, x), x_odd = mfd_sxtab16_ror8(offsets, x);
            const uint32_t y_even = mfd_sxtab16(offsets, y), y_odd = mfd_sxtab16_ror8(offsets, y);
            a0 = mfd_smlabb(w_even, x_even, a0);
            a2 = mfd_smlatt(w_even, x_even, a2);
            a1 = mfd_smlabb(w_odd, x_odd, a1);
            a3 = mfd_smlatt(w_odd, x_odd, a3);
            b0 = mfd_smlabb(w_even, y_even, b0);
            b2 = mfd_smlatt(w_even, y_even, b2);
            b1 = mfd_smlabb(w_odd, y_odd, b1);
            b3 = mfd_smlatt(w_odd, y_odd, b3);
        }
    }
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
    acc[4] = b0;
    acc[5] = b1;
    acc[6] = b2;
    acc[7] = b3;
}

/* One channel of the pixel `shift` bytes after the window's, one MAC at a time (the channels after the last four). */
static int32_t mfd_dw_channel(const mfd_dw_window *win, ptrdiff_t shift, const int8_t *w, int32_t f_w, int32_t out_c,
                              int32_t channel, int32_t input_offset, int32_t acc)
{
    int32_t fy;
    for (fy = win->fy0; fy < win->fy1; ++fy) {
        int32_t fx;
        for (fx = win->fx0; fx < win->fx1; ++fx) {
            const int32_t value = win->in[win->origin + shift + fy * win->tap_y_stride + fx * win->tap_x_stride + channel];
            acc = mf_wrap_add(acc, w[((size_t)fy * f_w + fx) * out_c + channel] * (value + input_offset));
        }
    }
    return acc;
}

/* One input channel: out_c filters of f_h x f_w x 1, a convolution. */
static mf_status mfd_depthwise_as_conv(const mf_op *op, const mf_affine_data *d, const mfd_requant *requant)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    const int8_t *w = (const int8_t *)filter->data;
    int8_t *out = (int8_t *)output->data;
    const int32_t batches = input->dims[0], out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];
    const int32_t taps = filter->dims[1] * filter->dims[2];
    int8_t *rows = (int8_t *)mf_affine_scratch(op, d);
    int16_t *columns = (int16_t *)(void *)(rows + ((out_c * taps + 3) & ~3));
    mfd_patch patch;
    int32_t oc;
    int32_t b;
    for (oc = 0; oc < out_c; ++oc) {
        int32_t tap;
        for (tap = 0; tap < taps; ++tap) {
            rows[oc * taps + tap] = w[tap * out_c + oc];
        }
    }
    dsp_patch_window(&patch, op, d, 1, 1);
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        patch.in = (const int8_t *)input->data + (size_t)b * patch.in_h * patch.in_w;
        /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
        for (oy = 0; oy < out_h; ++oy) {
            mfd_conv_rows(&patch, rows, bias, requant, oy, 1, out_w, out_c, out_c,
                         mfd_out_for(d->output_zero_point, d->act_min, d->act_max),
                         out + ((size_t)b * out_h + oy) * out_w * out_c, columns);
        }
    }
    return MF_OK;
}

/* The tensors and record fields the loops below read. */
#define MFD_DW_LOCALS                                                                                                   \
    const mf_tensor *input = &op->inputs[0];                                                                            \
    const mf_tensor *output = &op->outputs[0];                                                                          \
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;                            \
    const int8_t *in = (const int8_t *)input->data;                                                                     \
    const int8_t *w = (const int8_t *)op->inputs[1].data;                                                               \
    int8_t *out = (int8_t *)output->data;                                                                               \
    const int32_t batches = input->dims[0], in_h = input->dims[1], in_w = input->dims[2], in_c = input->dims[3];        \
    const int32_t out_h = output->dims[1], out_w = output->dims[2], out_c = output->dims[3];                            \
    const mf_affine_data *d = (const mf_affine_data *)op->data;                                                         \
    const mfd_requant *requant = dsp_requant_table(op, d)

/* 3 x 3, multiplier 1, outputs narrower than MFD_DW_MIN_WIDTH: the NHWC loops (record variant MFD_DW_3X3_NHWC). */
mf_status mfd_depthwise_eval_3x3_nhwc(const mf_op *op)
{
    MFD_DW_LOCALS;
    mfd_dw3x3_nhwc layer = {in, w, bias, requant, in_h, in_w, in_c, d->stride_h, d->stride_w, d->pad_h,
                            d->pad_w, d->input_offset, mfd_out_for(d->output_zero_point, d->act_min, d->act_max)};
    int32_t b;
    for (b = 0; b < batches; ++b, layer.in += (size_t)in_h * in_w * in_c, out += (size_t)out_h * out_w * out_c) {
        mfd_dw3x3_nhwc_layer(&layer, out_h, out_w, out);
    }
    return MF_OK;
}

/* 3 x 3 without dilation: the channel-major loops (record variant MFD_DW_3X3). */
mf_status mfd_depthwise_eval_3x3(const mf_op *op)
{
    MFD_DW_LOCALS;
    const mfd_dw3x3 layer = {NULL, w, bias, requant, in_h, in_w, in_c, d->channels_per_group, out_h, out_w,
                             d->stride_h, d->stride_w, d->pad_h, d->pad_w, d->input_offset, d->ring_slots,
                             mfd_out_for(d->output_zero_point, d->act_min, d->act_max)};
    int32_t b;
    for (b = 0; b < batches; ++b) {
        mfd_dw3x3 batch = layer;
        batch.in = in + (size_t)b * in_h * in_w * in_c;
        mfd_dw3x3_layer(&batch, out + (size_t)b * out_h * out_w * out_c, mf_affine_scratch(op, d));
    }
    return MF_OK;
}

/* One input channel: a convolution (record variant MFD_DW_ONE_INPUT_CHANNEL). */
mf_status mfd_depthwise_eval_one_input_channel(const mf_op *op)
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    return mfd_depthwise_as_conv(op, d, dsp_requant_table(op, d));
}

/* Multiplier 1, other filters: four channels a word (record variant MFD_DW_CHANNELS). */
mf_status mfd_depthwise_eval_channels(const mf_op *op)
{
    MFD_DW_LOCALS;
    const int32_t f_h = op->inputs[1].dims[1], f_w = op->inputs[1].dims[2];
    const int32_t input_offset = d->input_offset;
    const int32_t quads = out_c & ~3;
    ptrdiff_t pixel_step; /* input bytes between horizontally adjacent outputs */
    mfd_dw_window win;
    int32_t oc;
    int32_t b;
    win.row_stride = in_w * in_c;
    pixel_step = (ptrdiff_t)d->stride_w * in_c;
    win.tap_x_stride = d->dilation_w * in_c;
    win.tap_y_stride = d->dilation_h * win.row_stride;
    for (b = 0; b < batches; ++b) {
        int32_t oy;
        win.in = in + (size_t)b * in_h * win.row_stride;
        /* Row by row, so the output may overlap input rows already consumed (mf_overlap). */
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t in_y0 = oy * d->stride_h - d->pad_h;
            int32_t ox;
            mfd_valid_taps(in_y0, d->dilation_h, f_h, in_h, &win.fy0, &win.fy1);
            for (ox = 0; ox < out_w;) {
                const int32_t in_x0 = ox * d->stride_w - d->pad_w;
                int8_t *out_pixel = out + (((size_t)b * out_h + oy) * out_w + ox) * out_c;
                int32_t next_fx0 = -1;
                int32_t next_fx1 = -1;
                int32_t pixels;
                mfd_valid_taps(in_x0, d->dilation_w, f_w, in_w, &win.fx0, &win.fx1);
                if (ox + 1 < out_w) {
                    mfd_valid_taps(in_x0 + d->stride_w, d->dilation_w, f_w, in_w, &next_fx0, &next_fx1);
                }
                pixels = next_fx0 == win.fx0 && next_fx1 == win.fx1 ? 2 : 1;
                win.origin = (ptrdiff_t)in_y0 * win.row_stride + (ptrdiff_t)in_x0 * in_c;
                for (oc = 0; oc < quads; oc += 4) {
                    int32_t acc[8];
                    int32_t lane;
                    for (lane = 0; lane < 4; ++lane) {
                        acc[lane] = acc[4 + lane] = bias != NULL ? bias[oc + lane] : 0;
                    }
                    if (pixels == 2) {
                        mfd_dw_quad_pair(&win, pixel_step, w, f_w, out_c, oc, input_offset, acc);
                        mfd_store4(out_pixel + out_c + oc, acc + 4, requant + oc, d->output_zero_point, d->act_min, d->act_max);
                    } else {
                        mfd_dw_quad(&win, w, f_w, out_c, oc, input_offset, acc);
                    }
                    mfd_store4(out_pixel + oc, acc, requant + oc, d->output_zero_point, d->act_min, d->act_max);
                }
                for (; oc < out_c; ++oc) {
                    int32_t pixel;
                    for (pixel = 0; pixel < pixels; ++pixel) {
                        const int32_t acc = mfd_dw_channel(&win, pixel * pixel_step, w, f_w, out_c, oc, input_offset,
                                                           bias != NULL ? bias[oc] : 0);
                        out_pixel[pixel * out_c + oc] = mfd_output(acc, &requant[oc], d->output_zero_point, d->act_min, d->act_max);
                    }
                }
                ox += pixels;
            }
        }
    }
    return MF_OK;
}

/* The loop prepare chose (record variant); prepared firmware calls it directly (mf_eval_variants.h). */
mf_status mf_depthwise_conv_eval_dense(const mf_op *op)
{
    switch (((const mf_affine_data *)op->data)->variant) {
    case MFD_DW_3X3_NHWC:
        return mfd_depthwise_eval_3x3_nhwc(op);
    case MFD_DW_3X3:
        return mfd_depthwise_eval_3x3(op);
    case MFD_DW_ONE_INPUT_CHANNEL:
        return mfd_depthwise_eval_one_input_channel(op);
    case MFD_DW_CHANNELS:
        return mfd_depthwise_eval_channels(op);
    default:
        return mfd_depthwise_conv_eval_dense_reference(op);
    }
}
