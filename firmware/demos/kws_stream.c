/*
 * Keyword-spotting demo: raw 16 kHz audio streams through the device in
 * chunks of one frame stride (mfdemo_kws_stride samples, 20 ms by default).
 * The firmware's feature extractor (firmware/features, the code the model was
 * trained with, at the stride it was trained with) turns each chunk into a frame; every
 * mfdemo_kws_hop_frames frames the last mfdemo_kws_frames frames (normalized
 * as the model was trained) are classified, the last
 * mfdemo_kws_average outputs are averaged, and a keyword whose average
 * reaches the threshold is printed, then suppressed for mfdemo_kws_suppress_ms.
 *
 *   MF model <name> bytes=<model bytes>
 *   MF arena used=<bytes> size=<bytes>
 *   MF frame <i> <int16 LE hex>                      (when mfdemo_kws_print_frames)
 *   MF infer <last frame> t_ms=<end of window> cycles=<n> output=<int8 hex>
 *   MF word <label> t_ms=<end of window> score=<averaged int8 output>
 *   MF done frames=<n> inferences=<n> words=<n>
 */
#include <math.h>
#include <string.h>

#include "board.h"
#include "console.h"
#include "kws_data.h"
#include "mf_engine.h"

#define MFD_KWS_MAX_FRAMES 100
#define MFD_KWS_MAX_FEATURES KWSF_MEL_BINS
#define MFD_KWS_MAX_CLASSES 32
#define MFD_KWS_MAX_AVERAGE 16

static kwsf_workspace_t mfdemo_kws_workspace;
static kwsf_stream_t mfdemo_kws_stream;
/* The last mfdemo_kws_frames frames, oldest first. */
static int16_t mfdemo_kws_window[MFD_KWS_MAX_FRAMES * MFD_KWS_MAX_FEATURES];
/* The window as the model takes it: normalized by mfdemo_kws_normalization. */
static int16_t mfdemo_kws_model_window[MFD_KWS_MAX_FRAMES * MFD_KWS_MAX_FEATURES];
static int8_t mfdemo_kws_history[MFD_KWS_MAX_AVERAGE][MFD_KWS_MAX_CLASSES];

typedef struct {
    int32_t frames;
    int32_t inferences;
    int32_t words;
    int32_t quiet_until_ms;
} mfdemo_kws_state;

static int mfdemo_kws_check(void)
{
    return mfdemo_kws_frames >= 1 && mfdemo_kws_frames <= MFD_KWS_MAX_FRAMES && mfdemo_kws_features >= 1 &&
           mfdemo_kws_features <= MFD_KWS_MAX_FEATURES && mfdemo_kws_average >= 1 && mfdemo_kws_average <= MFD_KWS_MAX_AVERAGE &&
           mfdemo_kws_label_count >= 1u && mfdemo_kws_label_count <= MFD_KWS_MAX_CLASSES && mfdemo_kws_hop_frames >= 1;
}

/* feature * 2^-KWSF_FRAC_BITS quantized like the model's input: rint rounds half to even, as numpy; saturated. */
static int8_t mfdemo_kws_quantize(int16_t feature, const mf_tensor_info *info)
{
    double q = rint((double)feature / (double)(1 << KWSF_FRAC_BITS) / (double)info->scale) + (double)info->zero_point;
    if (q < -128.0) {
        return -128;
    }
    return q > 127.0 ? 127 : (int8_t)q;
}

static void mfdemo_kws_put_frame(int32_t index, const int16_t *frame)
{
    mf_console_begin("frame");
    mf_console_put(" ");
    mf_console_put_uint((uint32_t)index);
    mf_console_put(" ");
    mf_console_put_hex(frame, (size_t)mfdemo_kws_features * sizeof frame[0]);
    mf_console_end();
}

/* Classify the window ending at frame `last`; print a word when the averaged output says so. */
static int mfdemo_kws_classify(mf_model *model, mfdemo_kws_state *state, int32_t last)
{
    size_t count = (size_t)mfdemo_kws_frames * (size_t)mfdemo_kws_features;
    int32_t t_ms = (last * mfdemo_kws_stride + KWSF_WINDOW) / (KWSF_SAMPLE_RATE / 1000);
    int8_t *slot = mfdemo_kws_history[state->inferences % mfdemo_kws_average];
    int32_t filled = state->inferences + 1 < mfdemo_kws_average ? state->inferences + 1 : mfdemo_kws_average;
    mf_tensor_info input;
    mf_tensor_info output;
    mf_status status;
    uint32_t cycles;
    int32_t best = 0;
    int32_t best_sum = 0;
    size_t i;

    status = mf_input(model, 0, &input);
    if (status == MF_OK && (input.type != MF_INT8 || input.bytes != count)) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status != MF_OK) {
        mf_console_status("input", status);
        return 1;
    }
    memcpy(mfdemo_kws_model_window, mfdemo_kws_window, count * sizeof mfdemo_kws_window[0]);
    /* cannot fail: mfdemo_kws_check admits only frame and feature counts it takes */
    (void)kwsf_normalize(mfdemo_kws_model_window, mfdemo_kws_frames, mfdemo_kws_features, mfdemo_kws_normalization);
    for (i = 0; i < count; i++) {
        ((int8_t *)input.data)[i] = mfdemo_kws_quantize(mfdemo_kws_model_window[i], &input);
    }
    cycles = mfb_cycles();
    status = mf_invoke(model);
    cycles = mfb_cycles() - cycles;
    if (status == MF_OK) {
        status = mf_output(model, 0, &output);
    }
    if (status == MF_OK && (output.type != MF_INT8 || output.bytes != mfdemo_kws_label_count)) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status != MF_OK) {
        mf_console_status("invoke", status);
        return 1;
    }
    memcpy(slot, output.data, output.bytes);
    state->inferences++;
    mf_console_begin("infer");
    mf_console_put(" ");
    mf_console_put_uint((uint32_t)last);
    mf_console_put(" t_ms=");
    mf_console_put_uint((uint32_t)t_ms);
    mf_console_put(" cycles=");
    mf_console_put_uint(cycles);
    mf_console_put(" output=");
    mf_console_put_hex(output.data, output.bytes);
    mf_console_end();

    for (i = 0; i < mfdemo_kws_label_count; i++) {
        int32_t sum = 0;
        int32_t k;
        for (k = 0; k < filled; k++) {
            sum += mfdemo_kws_history[k][i];
        }
        if (i == 0 || sum > best_sum) {
            best = (int32_t)i;
            best_sum = sum;
        }
    }
    if (best >= mfdemo_kws_first_keyword && best_sum >= mfdemo_kws_threshold_q * filled && t_ms >= state->quiet_until_ms) {
        state->words++;
        state->quiet_until_ms = t_ms + mfdemo_kws_suppress_ms;
        mf_console_begin("word");
        mf_console_put(" ");
        mf_console_put(mfdemo_kws_labels[best]);
        mf_console_put(" t_ms=");
        mf_console_put_uint((uint32_t)t_ms);
        mf_console_put(" score=");
        mf_console_put_int(best_sum / filled);
        mf_console_end();
    }
    return 0;
}

int main(void)
{
    mf_model *model = NULL;
    mfdemo_kws_state state = {0, 0, 0, 0};
    uint32_t offset;
    if (!mfdemo_kws_check()) {
        mf_console_begin("error");
        mf_console_put(" configuration");
        mf_console_end();
        return 1;
    }
    mf_console_model(mfdemo_model_name, g_demo_model_data_len);
    if (mf_console_load(g_demo_model_data, g_demo_model_data_len, mfdemo_arena, mfdemo_arena_bytes, &model) != MF_OK) {
        return 1;
    }
    if (kwsf_stream_init(&mfdemo_kws_stream, mfdemo_kws_stride) != KWSF_OK) {
        mf_console_begin("error");
        mf_console_put(" stream-init");
        mf_console_end();
        return 1;
    }
    for (offset = 0; offset < mfdemo_kws_audio_samples; offset += (uint32_t)mfdemo_kws_stride) {
        int16_t frame[MFD_KWS_MAX_FEATURES];
        int32_t produced = 0;
        int32_t chunk = (int32_t)(mfdemo_kws_audio_samples - offset < (uint32_t)mfdemo_kws_stride ? mfdemo_kws_audio_samples - offset
                                                                                                   : (uint32_t)mfdemo_kws_stride);
        kwsf_status_t fstatus = kwsf_stream_push(&mfdemo_kws_stream, &mfdemo_kws_audio[offset], chunk, mfdemo_kws_kind,
                                                 mfdemo_kws_features, &mfdemo_kws_workspace, frame, 1, &produced);
        if (fstatus != KWSF_OK) {
            mf_console_begin("error");
            mf_console_put(" features status=");
            mf_console_put_int((int32_t)fstatus);
            mf_console_end();
            return 1;
        }
        if (produced == 0) {
            continue;
        }
        if (mfdemo_kws_print_frames) {
            mfdemo_kws_put_frame(state.frames, frame);
        }
        memmove(mfdemo_kws_window, &mfdemo_kws_window[mfdemo_kws_features],
                (size_t)(mfdemo_kws_frames - 1) * (size_t)mfdemo_kws_features * sizeof mfdemo_kws_window[0]);
        memcpy(&mfdemo_kws_window[(mfdemo_kws_frames - 1) * mfdemo_kws_features], frame, (size_t)mfdemo_kws_features * sizeof frame[0]);
        state.frames++;
        if (state.frames >= mfdemo_kws_frames && (state.frames - mfdemo_kws_frames) % mfdemo_kws_hop_frames == 0) {
            if (mfdemo_kws_classify(model, &state, state.frames - 1) != 0) {
                return 1;
            }
        }
    }
    mf_console_begin("done");
    mf_console_put(" frames=");
    mf_console_put_uint((uint32_t)state.frames);
    mf_console_put(" inferences=");
    mf_console_put_uint((uint32_t)state.inferences);
    mf_console_put(" words=");
    mf_console_put_uint((uint32_t)state.words);
    mf_console_end();
    return 0;
}
