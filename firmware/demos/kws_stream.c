/*
 * Keyword-spotting demo: raw 16 kHz audio streams through the device in
 * 20 ms chunks. The firmware's feature extractor (firmware/features, the code
 * the model was trained with) turns each chunk into a frame; every
 * mfd_kws_hop_frames frames the last mfd_kws_frames frames are classified, the
 * last mfd_kws_average outputs are averaged, and a keyword whose average
 * reaches the threshold is printed, then suppressed for mfd_kws_suppress_ms.
 *
 *   MFD model <name> bytes=<model bytes> arena=<bytes used>
 *   MFD frame <i> <int16 LE hex>                      (when mfd_kws_print_frames)
 *   MFD infer <last frame> t_ms=<end of window> cycles=<n> output=<int8 hex>
 *   MFD word <label> t_ms=<end of window> score=<averaged int8 output>
 *   MFD done frames=<n> inferences=<n> words=<n>
 */
#include <math.h>
#include <string.h>

#include "board.h"
#include "demo_io.h"
#include "kws_data.h"
#include "mf_engine.h"

#define MFD_KWS_MAX_FRAMES 100
#define MFD_KWS_MAX_FEATURES KWSF_MEL_BINS
#define MFD_KWS_MAX_CLASSES 32
#define MFD_KWS_MAX_AVERAGE 16

static kwsf_workspace_t mfd_kws_workspace;
static kwsf_stream_t mfd_kws_stream;
/* The last mfd_kws_frames frames, oldest first. */
static int16_t mfd_kws_window[MFD_KWS_MAX_FRAMES * MFD_KWS_MAX_FEATURES];
static int8_t mfd_kws_history[MFD_KWS_MAX_AVERAGE][MFD_KWS_MAX_CLASSES];

typedef struct {
    int32_t frames;
    int32_t inferences;
    int32_t words;
    int32_t quiet_until_ms;
} mfd_kws_state;

static int mfd_kws_check(void)
{
    return mfd_kws_frames >= 1 && mfd_kws_frames <= MFD_KWS_MAX_FRAMES && mfd_kws_features >= 1 &&
           mfd_kws_features <= MFD_KWS_MAX_FEATURES && mfd_kws_average >= 1 && mfd_kws_average <= MFD_KWS_MAX_AVERAGE &&
           mfd_kws_label_count >= 1u && mfd_kws_label_count <= MFD_KWS_MAX_CLASSES && mfd_kws_hop_frames >= 1;
}

/* feature * 2^-KWSF_FRAC_BITS quantized like the model's input: rint rounds half to even, as numpy; saturated. */
static int8_t mfd_kws_quantize(int16_t feature, const mf_tensor_info *info)
{
    double q = rint((double)feature / (double)(1 << KWSF_FRAC_BITS) / (double)info->scale) + (double)info->zero_point;
    if (q < -128.0) {
        return -128;
    }
    return q > 127.0 ? 127 : (int8_t)q;
}

static void mfd_kws_put_frame(int32_t index, const int16_t *frame)
{
    mfd_put("MFD frame ");
    mfd_put_uint((uint32_t)index);
    mfd_put(" ");
    mfd_put_hex(frame, (size_t)mfd_kws_features * sizeof frame[0]);
    mfd_put("\n");
}

/* Classify the window ending at frame `last`; print a word when the averaged output says so. */
static int mfd_kws_classify(mf_model *model, mfd_kws_state *state, int32_t last)
{
    size_t count = (size_t)mfd_kws_frames * (size_t)mfd_kws_features;
    int32_t t_ms = (last * KWSF_STRIDE + KWSF_WINDOW) / (KWSF_SAMPLE_RATE / 1000);
    int8_t *slot = mfd_kws_history[state->inferences % mfd_kws_average];
    int32_t filled = state->inferences + 1 < mfd_kws_average ? state->inferences + 1 : mfd_kws_average;
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
        mfd_put_status("input", status);
        return 1;
    }
    for (i = 0; i < count; i++) {
        ((int8_t *)input.data)[i] = mfd_kws_quantize(mfd_kws_window[i], &input);
    }
    cycles = mfb_cycles();
    status = mf_invoke(model);
    cycles = mfb_cycles() - cycles;
    if (status == MF_OK) {
        status = mf_output(model, 0, &output);
    }
    if (status == MF_OK && (output.type != MF_INT8 || output.bytes != mfd_kws_label_count)) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status != MF_OK) {
        mfd_put_status("invoke", status);
        return 1;
    }
    memcpy(slot, output.data, output.bytes);
    state->inferences++;
    mfd_put("MFD infer ");
    mfd_put_uint((uint32_t)last);
    mfd_put(" t_ms=");
    mfd_put_uint((uint32_t)t_ms);
    mfd_put(" cycles=");
    mfd_put_uint(cycles);
    mfd_put(" output=");
    mfd_put_hex(output.data, output.bytes);
    mfd_put("\n");

    for (i = 0; i < mfd_kws_label_count; i++) {
        int32_t sum = 0;
        int32_t k;
        for (k = 0; k < filled; k++) {
            sum += mfd_kws_history[k][i];
        }
        if (i == 0 || sum > best_sum) {
            best = (int32_t)i;
            best_sum = sum;
        }
    }
    if (best >= mfd_kws_first_keyword && best_sum >= mfd_kws_threshold_q * filled && t_ms >= state->quiet_until_ms) {
        state->words++;
        state->quiet_until_ms = t_ms + mfd_kws_suppress_ms;
        mfd_put("MFD word ");
        mfd_put(mfd_kws_labels[best]);
        mfd_put(" t_ms=");
        mfd_put_uint((uint32_t)t_ms);
        mfd_put(" score=");
        mfd_put_int(best_sum / filled);
        mfd_put("\n");
    }
    return 0;
}

int main(void)
{
    mf_model *model = NULL;
    mfd_kws_state state = {0, 0, 0, 0};
    uint32_t offset;
    if (!mfd_kws_check()) {
        mfd_put("MFD error configuration\n");
        return 1;
    }
    if (mfd_load(mfd_model_name, g_demo_model_data, g_demo_model_data_len, mfd_arena, mfd_arena_bytes, &model) != MF_OK) {
        return 1;
    }
    if (kwsf_stream_init(&mfd_kws_stream) != KWSF_OK) {
        mfd_put("MFD error stream-init\n");
        return 1;
    }
    for (offset = 0; offset < mfd_kws_audio_samples; offset += KWSF_STRIDE) {
        int16_t frame[MFD_KWS_MAX_FEATURES];
        int32_t produced = 0;
        int32_t chunk = (int32_t)(mfd_kws_audio_samples - offset < KWSF_STRIDE ? mfd_kws_audio_samples - offset : KWSF_STRIDE);
        kwsf_status_t fstatus = kwsf_stream_push(&mfd_kws_stream, &mfd_kws_audio[offset], chunk, mfd_kws_kind,
                                                 mfd_kws_features, &mfd_kws_workspace, frame, 1, &produced);
        if (fstatus != KWSF_OK) {
            mfd_put("MFD error features status=");
            mfd_put_int((int32_t)fstatus);
            mfd_put("\n");
            return 1;
        }
        if (produced == 0) {
            continue;
        }
        if (mfd_kws_print_frames) {
            mfd_kws_put_frame(state.frames, frame);
        }
        memmove(mfd_kws_window, &mfd_kws_window[mfd_kws_features],
                (size_t)(mfd_kws_frames - 1) * (size_t)mfd_kws_features * sizeof mfd_kws_window[0]);
        memcpy(&mfd_kws_window[(mfd_kws_frames - 1) * mfd_kws_features], frame, (size_t)mfd_kws_features * sizeof frame[0]);
        state.frames++;
        if (state.frames >= mfd_kws_frames && (state.frames - mfd_kws_frames) % mfd_kws_hop_frames == 0) {
            if (mfd_kws_classify(model, &state, state.frames - 1) != 0) {
                return 1;
            }
        }
    }
    mfd_put("MFD done frames=");
    mfd_put_uint((uint32_t)state.frames);
    mfd_put(" inferences=");
    mfd_put_uint((uint32_t)state.inferences);
    mfd_put(" words=");
    mfd_put_uint((uint32_t)state.words);
    mfd_put("\n");
    return 0;
}
