/* Exported wrappers so the tests can call the DSP inner loops (kernels/dsp/mfd_*.h) directly, built for the
 * host with the C stand-ins of the SIMD instructions. */
#include <string.h>

#include "kernels/dsp/mfd_depthwise.h"
#include "kernels/dsp/mfd_depthwise_nhwc.h"
#include "kernels/dsp/mfd_gemm.h"

static mfd_requant probe_requant(int32_t multiplier, int32_t shift)
{
    mfd_requant q;
    q.multiplier = multiplier;
    q.left = (int16_t)(shift > 0 ? shift : 0);
    q.right = (int16_t)(shift > 0 ? 0 : -shift);
    return q;
}

int32_t probe_requantize(int32_t acc, int32_t multiplier, int32_t shift)
{
    const mfd_requant q = probe_requant(multiplier, shift);
    return mfd_requantize(acc, &q);
}

/* A layer's shape: geometry is stride_h, stride_w, pad_h, pad_w. */
static mfd_dw3x3 probe_dw3x3_shape(int32_t in_c, int32_t multiplier, int32_t out_h, int32_t out_w, const int32_t *geometry)
{
    mfd_dw3x3 layer;
    memset(&layer, 0, sizeof layer);
    layer.in_c = in_c;
    layer.multiplier = multiplier;
    layer.out_h = out_h;
    layer.out_w = out_w;
    layer.stride_h = geometry[0];
    layer.stride_w = geometry[1];
    layer.pad_h = geometry[2];
    layer.pad_w = geometry[3];
    layer.slots = mfd_dw3x3_slots(&layer); /* as prepare does */
    return layer;
}

/* A whole 3 x 3 depthwise layer (one batch) through mfd_dw3x3_layer; requant: `channels` records of
 * scratch (channels = in_c x multiplier); scratch: mfd_dw3x3_scratch_bytes. */
void probe_dw3x3(const int8_t *in, int32_t in_h, int32_t in_w, int32_t in_c, int32_t multiplier, const int8_t *weights,
                 const int32_t *bias, const int32_t *multipliers, const int32_t *shifts, const int32_t *geometry,
                 const int32_t *quant, int32_t out_h, int32_t out_w, int8_t *out, mfd_requant *requant, void *scratch)
{
    mfd_dw3x3 layer = probe_dw3x3_shape(in_c, multiplier, out_h, out_w, geometry);
    int32_t c;
    for (c = 0; c < in_c * multiplier; ++c) {
        requant[c] = probe_requant(multipliers[c], shifts[c]);
    }
    layer.in = in;
    layer.weights = weights;
    layer.bias = bias;
    layer.requant = requant;
    layer.in_h = in_h;
    layer.in_w = in_w;
    layer.input_offset = quant[0];
    layer.out = mfd_out_for(quant[1], quant[2], quant[3]);
    mfd_dw3x3_layer(&layer, out, scratch);
}

/* The scratch bytes mfd_dw3x3_layer needs. */
size_t probe_dw3x3_scratch_bytes(int32_t in_c, int32_t multiplier, int32_t out_h, int32_t out_w, const int32_t *geometry)
{
    const mfd_dw3x3 layer = probe_dw3x3_shape(in_c, multiplier, out_h, out_w, geometry);
    return mfd_dw3x3_scratch_bytes(&layer);
}

/* The same layer, multiplier 1, through the NHWC loops (mfd_dw3x3_nhwc_layer) when it fits them as prepare checks
 * (mfd_dw3x3_nhwc_fits, mfd_one_step_folds for every channel): 1 then, else 0 with `out` untouched. */
int probe_dw3x3_nhwc(const int8_t *in, int32_t in_h, int32_t in_w, int32_t channels, const int8_t *weights,
                     const int32_t *bias, const int32_t *multipliers, const int32_t *shifts, const int32_t *geometry,
                     const int32_t *quant, int32_t out_h, int32_t out_w, int8_t *out, mfd_requant *requant)
{
    mfd_dw3x3_nhwc layer;
    int32_t c;
    layer.in = in;
    layer.weights = weights;
    layer.bias = bias;
    layer.requant = requant;
    layer.in_h = in_h;
    layer.in_w = in_w;
    layer.channels = channels;
    layer.stride_h = geometry[0];
    layer.stride_w = geometry[1];
    layer.pad_h = geometry[2];
    layer.pad_w = geometry[3];
    layer.input_offset = quant[0];
    layer.out = mfd_out_for(quant[1], quant[2], quant[3]);
    if (!mfd_dw3x3_nhwc_fits(&layer, out_h, out_w)) {
        return 0;
    }
    for (c = 0; c < channels; ++c) {
        requant[c] = probe_requant(multipliers[c], shifts[c]);
        if (!mfd_one_step_folds(requant[c].right)) {
            return 0;
        }
    }
    mfd_dw3x3_nhwc_layer(&layer, out_h, out_w, out);
    return 1;
}

/* A whole convolution (one batch, one group, no dilation) through mfd_conv_rows: weights [out_c][f_h][f_w][in_c];
 * geometry: stride_h, stride_w, pad_h, pad_w; requant: out_c records of scratch; columns: mfd_columns_bytes of the
 * window's values. */
void probe_conv_rows(const int8_t *in, int32_t in_h, int32_t in_w, int32_t in_c, const int8_t *weights, int32_t f_h,
                     int32_t f_w, int32_t out_c, const int32_t *bias, const int32_t *multipliers, const int32_t *shifts,
                     const int32_t *geometry, const int32_t *quant, int32_t out_h, int32_t out_w, int8_t *out,
                     mfd_requant *requant, int16_t *columns)
{
    mfd_patch patch;
    int32_t c;
    for (c = 0; c < out_c; ++c) {
        requant[c] = probe_requant(multipliers[c], shifts[c]);
    }
    patch.in = in;
    patch.in_h = in_h;
    patch.in_w = in_w;
    patch.in_c = in_c;
    patch.f_h = f_h;
    patch.f_w = f_w;
    patch.f_c = in_c;
    patch.stride_h = geometry[0];
    patch.stride_w = geometry[1];
    patch.pad_h = geometry[2];
    patch.pad_w = geometry[3];
    patch.dilation_h = 1;
    patch.dilation_w = 1;
    patch.offset = quant[0];
    mfd_conv_rows(&patch, weights, bias, requant, 0, out_h, out_w, out_c, out_c, mfd_out_for(quant[1], quant[2], quant[3]),
                  out, columns);
}

size_t probe_conv_columns_bytes(int32_t values) { return mfd_columns_bytes(values); }
