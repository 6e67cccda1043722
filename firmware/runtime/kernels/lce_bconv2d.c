/*
 * LceBconv2d (Larq Compute Engine): binary 2-D convolution of bit-packed
 * input and filters, bit for bit as LCE's interpreter runs it.
 *
 * The accumulator counts the differing bits over the window (XOR, popcount);
 * positions outside the input count as bit 0 (+1): LCE's "one" padding. Then
 * the output transform: float or int8 out = clamp(2 * accum) * multiplier +
 * bias, with the fused batch-norm, the back-transformation K - 2 * accum and,
 * for int8, the output scale and zero point folded into multiplier and bias in
 * prepare (in double, as LCE's OneTimeSetup); bit-packed out = accum > threshold.
 * "Same" padding with zeros (pad_values 0, float output only, as LCE) adds a
 * per-position correction afterwards, LCE's zero_padding_correction.
 *
 * Inputs: bit-packed input [N, H, W, words], filter [O, fh, fw, words] (OHWI,
 * bit-packed), post_activation_multiplier and post_activation_bias [O] (float
 * and int8 outputs), thresholds [O] (bit-packed output). Options: a FlexBuffer
 * map (channels_in, strides, dilations, padding, pad_values, fused activation).
 * Grouped convolutions are refused (LCE's default kernel refuses them too).
 */
#include <math.h>
#include <string.h>

#include "mf_binary.h"
#include "mf_flexbuffer.h"
#include "mf_kernel.h"

enum { BCONV_OUT_FLOAT = 0, BCONV_OUT_INT8 = 1, BCONV_OUT_BITPACKED = 2 };

/* The op-data record; then, for float and int8 output, the output transform's
 * multipliers and biases (out_c floats each); then, with zero correction, its
 * cache (4 x effective filter height x width x out_c floats). */
typedef struct bconv_data {
    int32_t channels_in, words, out_c, filter_h, filter_w, stride_h, stride_w, dilation_h, dilation_w;
    int32_t pad_h, pad_w, output_kind, clamp_min, clamp_max, zero_correction, transform_floats;
} bconv_data;

typedef struct bconv_options {
    int32_t channels_in, stride_h, stride_w, dilation_h, dilation_w, padding, pad_value, activation;
} bconv_options;

static mf_status bconv_read_options(const mf_op *op, bconv_options *o)
{
    static const char *const keys[] = {"channels_in", "stride_height", "stride_width", "dilation_height_factor",
                                       "dilation_width_factor", "padding", "pad_values", "fused_activation_function"};
    int32_t *fields[8];
    size_t i;
    fields[0] = &o->channels_in;
    fields[1] = &o->stride_h;
    fields[2] = &o->stride_w;
    fields[3] = &o->dilation_h;
    fields[4] = &o->dilation_w;
    fields[5] = &o->padding;
    fields[6] = &o->pad_value;
    fields[7] = &o->activation;
    for (i = 0; i < sizeof keys / sizeof keys[0]; ++i) {
        int found;
        const mf_status status = mf_flex_map_int(op->options.custom, op->options.custom_size, keys[i], fields[i], &found);
        if (status != MF_OK) {
            return status;
        }
        if (!found) {
            return MF_ERR_BAD_MODEL; /* LCE requires every one of them */
        }
    }
    return MF_OK;
}

static int bconv_vector_ok(const mf_tensor *t, mf_dtype type, int32_t count)
{
    return t->rank == 1 && t->type == type && t->dims[0] == count && t->is_constant && t->data != NULL;
}

/* Checks the op; fills the record's geometry. */
static mf_status bconv_check(const mf_op *op, bconv_data *d)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *filter = &op->inputs[1];
    const mf_tensor *output = &op->outputs[0];
    bconv_options o;
    int32_t out_h, out_w, eff_h, eff_w;
    mf_status status;
    if (op->input_count != 5 || op->output_count != 1) {
        return MF_ERR_BAD_MODEL;
    }
    status = bconv_read_options(op, &o);
    if (status != MF_OK) {
        return status;
    }
    if (input->type != MF_INT32 || filter->type != MF_INT32 ||
        (output->type != MF_FLOAT32 && output->type != MF_INT8 && output->type != MF_INT32)) {
        return MF_ERR_UNSUPPORTED_TYPE;
    }
    if (input->rank != 4 || filter->rank != 4 || output->rank != 4 || !filter->is_constant || filter->data == NULL) {
        return MF_ERR_BAD_MODEL;
    }
    if (o.stride_h < 1 || o.stride_w < 1 || o.dilation_h < 1 || o.dilation_w < 1 || o.stride_h > 0x7FFF ||
        o.stride_w > 0x7FFF || o.dilation_h > 0x7FFF || o.dilation_w > 0x7FFF ||
        (o.padding != MF_PADDING_SAME && o.padding != MF_PADDING_VALID) || (o.pad_value != 0 && o.pad_value != 1) ||
        o.activation < MF_ACT_NONE || o.activation > MF_ACT_RELU6 || o.channels_in < 1) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    d->channels_in = o.channels_in;
    d->words = mf_bitpacked_words(o.channels_in);
    d->out_c = filter->dims[0];
    d->filter_h = filter->dims[1];
    d->filter_w = filter->dims[2];
    if (input->dims[0] < 1 || input->dims[1] < 1 || input->dims[2] < 1 || d->out_c < 1 || d->filter_h < 1 ||
        d->filter_w < 1 || input->dims[3] != d->words) {
        return MF_ERR_BAD_MODEL;
    }
    if (filter->dims[3] != d->words) {
        return MF_ERR_UNSUPPORTED_PARAM; /* grouped */
    }
    if ((int64_t)(d->filter_h - 1) * o.dilation_h >= 0x7FFF || (int64_t)(d->filter_w - 1) * o.dilation_w >= 0x7FFF ||
        (int64_t)d->filter_h * d->filter_w * o.channels_in > 0x3FFFFFFF) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    d->stride_h = o.stride_h;
    d->stride_w = o.stride_w;
    d->dilation_h = o.dilation_h;
    d->dilation_w = o.dilation_w;
    eff_h = (d->filter_h - 1) * o.dilation_h + 1;
    eff_w = (d->filter_w - 1) * o.dilation_w + 1;
    out_h = mf_conv_out_size(o.padding, input->dims[1], d->filter_h, o.stride_h, o.dilation_h);
    out_w = mf_conv_out_size(o.padding, input->dims[2], d->filter_w, o.stride_w, o.dilation_w);
    d->output_kind = output->type == MF_FLOAT32 ? BCONV_OUT_FLOAT : (output->type == MF_INT8 ? BCONV_OUT_INT8 : BCONV_OUT_BITPACKED);
    if (out_h < 1 || out_w < 1 || output->dims[0] != input->dims[0] || output->dims[1] != out_h || output->dims[2] != out_w ||
        output->dims[3] != (d->output_kind == BCONV_OUT_BITPACKED ? mf_bitpacked_words(d->out_c) : d->out_c)) {
        return MF_ERR_BAD_MODEL;
    }
    d->pad_h = mf_conv_padding(o.stride_h, o.dilation_h, input->dims[1], d->filter_h, out_h);
    d->pad_w = mf_conv_padding(o.stride_w, o.dilation_w, input->dims[2], d->filter_w, out_w);
    d->zero_correction = o.padding == MF_PADDING_SAME && o.pad_value == 0;
    if (d->zero_correction && (d->output_kind != BCONV_OUT_FLOAT || o.activation != MF_ACT_NONE || eff_h > input->dims[1] ||
                               eff_w > input->dims[2] || (int64_t)eff_h * eff_w * d->out_c > (1 << 24))) {
        return MF_ERR_UNSUPPORTED_PARAM; /* LCE's kernel has zero padding for float output without activation only */
    }
    if (d->output_kind == BCONV_OUT_BITPACKED) {
        if (!bconv_vector_ok(&op->inputs[4], MF_INT32, d->out_c)) {
            return MF_ERR_BAD_MODEL;
        }
    } else if (!bconv_vector_ok(&op->inputs[2], MF_FLOAT32, d->out_c) || !bconv_vector_ok(&op->inputs[3], MF_FLOAT32, d->out_c)) {
        return MF_ERR_BAD_MODEL;
    }
    if (d->output_kind == BCONV_OUT_INT8 && (output->quant_count < 1 || !(output->scale > 0.0f))) {
        return MF_ERR_UNSUPPORTED_PARAM;
    }
    {
        /* LCE's clamp in the accumulator's doubled domain, from the activation's range of K - 2 * accum. */
        const int32_t k = d->filter_h * d->filter_w * o.channels_in;
        int32_t low = o.activation == MF_ACT_NONE ? INT32_MIN : (o.activation == MF_ACT_RELU_N1_TO_1 ? -1 : 0);
        int32_t high = o.activation == MF_ACT_RELU6 ? 6 : (o.activation == MF_ACT_RELU_N1_TO_1 ? 1 : INT32_MAX);
        low = low > -k ? low : -k;
        high = high < k ? high : k;
        d->clamp_min = k - high;
        d->clamp_max = k - low;
    }
    d->transform_floats = d->output_kind == BCONV_OUT_BITPACKED ? 0 : 2 * d->out_c;
    return MF_OK;
}

static float bconv_float_at(const mf_tensor *t, int32_t index)
{
    const uint32_t bits = mf_binary_word_at(t->data, (size_t)index);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

static uint32_t bconv_word_at(const mf_tensor *t, size_t index) { return mf_binary_word_at(t->data, index); }

/* LCE's zero_padding_correction::CacheCorrectionValues: per (case, y, x, channel), minus the
 * multiplier times the sum of the filter taps (+1/-1 per channel) that stick out. */
static void bconv_fill_correction(const mf_op *op, const bconv_data *d, float *cache)
{
    const mf_tensor *filter = &op->inputs[1];
    const int32_t eff_h = (d->filter_h - 1) * d->dilation_h + 1, eff_w = (d->filter_w - 1) * d->dilation_w + 1;
    int32_t y, x, c;
    for (y = 0; y < eff_h; ++y) {
        for (x = 0; x < eff_w; ++x) {
            for (c = 0; c < d->out_c; ++c) {
                float corrections[4] = {0.0f, 0.0f, 0.0f, 0.0f};
                int32_t fy, fx, direction;
                for (fy = 0; fy < d->filter_h; ++fy) {
                    for (fx = 0; fx < d->filter_w; ++fx) {
                        const size_t base = (((size_t)c * d->filter_h + fy) * d->filter_w + fx) * d->words;
                        const int32_t ey = d->dilation_h * fy, ex = d->dilation_w * fx;
                        int32_t ones = 0, w;
                        float tap;
                        for (w = 0; w < d->words; ++w) {
                            ones += mf_popcount32(bconv_word_at(filter, base + (size_t)w));
                        }
                        tap = (float)(d->channels_in - 2 * ones);
                        if (ey < y || ex < x) {
                            corrections[0] += tap;
                        }
                        if (ey < y || eff_w - ex <= x) {
                            corrections[1] += tap;
                        }
                        if (eff_h - ey <= y || ex < x) {
                            corrections[2] += tap;
                        }
                        if (eff_h - ey <= y || eff_w - ex <= x) {
                            corrections[3] += tap;
                        }
                    }
                }
                for (direction = 0; direction < 4; ++direction) {
                    const float mul = -1.0f * bconv_float_at(&op->inputs[2], c);
                    cache[(((size_t)direction * eff_h + y) * eff_w + x) * d->out_c + c] = mul * corrections[direction];
                }
            }
        }
    }
}

mf_status mf_lce_bconv2d_prepare(const mf_op *op, size_t *scratch_bytes)
{
    bconv_data d;
    bconv_data *record;
    size_t floats;
    int32_t c;
    mf_status status = bconv_check(op, &d);
    *scratch_bytes = 0;
    if (status != MF_OK) {
        return status;
    }
    floats = (size_t)d.transform_floats;
    if (d.zero_correction) {
        floats += 4u * (size_t)((d.filter_h - 1) * d.dilation_h + 1) * (size_t)((d.filter_w - 1) * d.dilation_w + 1) * (size_t)d.out_c;
    }
    record = (bconv_data *)mf_op_data(op, sizeof d + floats * sizeof(float));
    if (record == NULL) {
        return MF_ERR_ARENA_TOO_SMALL;
    }
    *record = d;
    if (d.output_kind != BCONV_OUT_BITPACKED) {
        float *multiplier = (float *)(record + 1);
        float *bias = multiplier + d.out_c;
        const int32_t k = d.filter_h * d.filter_w * d.channels_in;
        const double scale = d.output_kind == BCONV_OUT_INT8 ? (double)op->outputs[0].scale : 1.0;
        const double zero_point = d.output_kind == BCONV_OUT_INT8 ? (double)op->outputs[0].zero_point : 0.0;
        for (c = 0; c < d.out_c; ++c) {
            const double post_mul = (double)bconv_float_at(&op->inputs[2], c);
            const double post_bias = (double)bconv_float_at(&op->inputs[3], c);
            multiplier[c] = (float)(-1.0 * post_mul / scale);
            bias[c] = (float)((post_bias + (double)k * post_mul) / scale + zero_point);
        }
    }
    if (d.zero_correction) {
        bconv_fill_correction(op, &d, (float *)(record + 1) + d.transform_floats);
    }
    return MF_OK;
}

/* LCE's zero_padding_correction::ApplyCorrection: adds the cached correction where the window sticks out. */
static void bconv_apply_correction(const bconv_data *d, const mf_tensor *input, const mf_tensor *output, const float *cache)
{
    const int32_t in_h = input->dims[1], in_w = input->dims[2], out_h = output->dims[1], out_w = output->dims[2];
    const int32_t eff_h = (d->filter_h - 1) * d->dilation_h + 1, eff_w = (d->filter_w - 1) * d->dilation_w + 1;
    const int32_t left_offset = ((out_w - 1) * d->stride_w + eff_w - in_w) / 2;
    const int32_t top_offset = ((out_h - 1) * d->stride_h + eff_h - in_h) / 2;
    int32_t b, oy, ox, c;
    for (b = 0; b < input->dims[0]; ++b) {
        for (oy = 0; oy < out_h; ++oy) {
            const int32_t top = top_offset - oy * d->stride_h;
            const int32_t bottom = -top - in_h + eff_h;
            for (ox = 0; ox < out_w; ++ox) {
                const int32_t left = left_offset - ox * d->stride_w;
                const int32_t right = -left - in_w + eff_w;
                int32_t which, cx, cy;
                float *out;
                const float *fix;
                if (left <= 0 && right <= 0 && top <= 0 && bottom <= 0) {
                    continue; /* the window lies inside the input */
                }
                if (right <= 0 && top > 0 && bottom < 0) {
                    which = 0, cx = left >= 0 ? left : 0, cy = top;
                } else if (left < 0 && right > 0 && bottom <= 0) {
                    which = 1, cx = right, cy = top >= 0 ? top : 0;
                } else if (left > 0 && right < 0 && top <= 0) {
                    which = 2, cx = left, cy = bottom >= 0 ? bottom : 0;
                } else if (left <= 0 && top < 0 && bottom > 0) {
                    which = 3, cx = right >= 0 ? right : 0, cy = bottom;
                } else {
                    continue; /* LCE skips the other cases too */
                }
                fix = cache + (((size_t)which * eff_h + cy) * eff_w + cx) * d->out_c;
                out = (float *)output->data + (((size_t)b * out_h + oy) * out_w + ox) * d->out_c;
                for (c = 0; c < d->out_c; ++c) {
                    out[c] += fix[c];
                }
            }
        }
    }
}

/* The output transform of output channel `c` at output position `pixel`: a float or int8 value, or one
 * bit of `*packed`, written out once its word is full. */
static void bconv_output(const mf_op *op, const bconv_data *d, size_t pixel, int32_t c, int32_t accum, uint32_t *packed)
{
    const mf_tensor *output = &op->outputs[0];
    if (d->output_kind == BCONV_OUT_BITPACKED) {
        const int32_t threshold = (int32_t)mf_binary_word_at(op->inputs[4].data, (size_t)c);
        *packed |= (uint32_t)(accum > threshold) << (c % MF_BITPACK_WIDTH);
        if ((c + 1) % MF_BITPACK_WIDTH == 0 || c + 1 == d->out_c) {
            ((int32_t *)output->data)[pixel * (size_t)mf_bitpacked_words(d->out_c) + (size_t)(c / MF_BITPACK_WIDTH)] = (int32_t)*packed;
            *packed = 0;
        }
    } else {
        const float *multiplier = (const float *)(d + 1);
        const int32_t x = mf_clamp_i32(accum * 2, d->clamp_min, d->clamp_max);
        const float scaled = (float)x * multiplier[c];
        const float y = scaled + multiplier[d->out_c + c];
        if (d->output_kind == BCONV_OUT_FLOAT) {
            ((float *)output->data)[pixel * d->out_c + c] = y;
        } else {
            const float r = roundf(y);
            ((int8_t *)output->data)[pixel * d->out_c + c] = (int8_t)(r >= 127.0f ? 127 : (r > -128.0f ? (int32_t)r : -128));
        }
    }
}

mf_status mf_lce_bconv2d_eval(const mf_op *op)
{
    const mf_tensor *input = &op->inputs[0];
    const mf_tensor *output = &op->outputs[0];
    const bconv_data *d = (const bconv_data *)op->data;
    const uint32_t *in = (const uint32_t *)input->data;
    const int32_t in_h = input->dims[1], in_w = input->dims[2], out_h = output->dims[1], out_w = output->dims[2];
    int32_t b, oy, ox, c;
    for (b = 0; b < input->dims[0]; ++b) {
        for (oy = 0; oy < out_h; ++oy) {
            for (ox = 0; ox < out_w; ++ox) {
                const size_t pixel = ((size_t)b * out_h + oy) * out_w + ox;
                uint32_t packed = 0;
                for (c = 0; c < d->out_c; ++c) {
                    int32_t accum = 0, fy, fx;
                    for (fy = 0; fy < d->filter_h; ++fy) {
                        const int32_t iy = oy * d->stride_h - d->pad_h + fy * d->dilation_h;
                        for (fx = 0; fx < d->filter_w; ++fx) {
                            const int32_t ix = ox * d->stride_w - d->pad_w + fx * d->dilation_w;
                            const size_t tap = (((size_t)c * d->filter_h + fy) * d->filter_w + fx) * d->words;
                            const int inside = iy >= 0 && iy < in_h && ix >= 0 && ix < in_w;
                            const size_t at = inside ? (((size_t)b * in_h + iy) * in_w + ix) * d->words : 0u;
                            int32_t w;
                            for (w = 0; w < d->words; ++w) {
                                accum += mf_popcount32((inside ? in[at + (size_t)w] : 0u) ^ bconv_word_at(&op->inputs[1], tap + (size_t)w));
                            }
                        }
                    }
                    bconv_output(op, d, pixel, c, accum, &packed);
                }
            }
        }
    }
    if (d->zero_correction) {
        bconv_apply_correction(d, input, output, (const float *)(d + 1) + d->transform_floats);
    }
    return MF_OK;
}
