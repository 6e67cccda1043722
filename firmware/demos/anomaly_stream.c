/*
 * Predictive-maintenance demo: a vibration recording streams through the
 * device window by window. For each window the device computes the integer
 * band-power features (vib_features.c, bit-exact with training), runs the
 * autoencoder and scores the window by its mean squared reconstruction error;
 * a score above the calibrated threshold raises the alarm.
 *
 *   MF model <name> bytes=<model bytes>
 *   MF arena used=<bytes> size=<bytes>
 *   MF window <i> start_ms=<ms> score_u=<score * 1e6> score=<double bits> cycles=<n> features=<int16 LE hex>
 *   MF alarm <i> start_ms=<ms> score_u=<score * 1e6> threshold_u=<threshold * 1e6>
 *   MF done windows=<n> alarms=<n>
 *
 * The score is computed in double precision in a fixed order, so the host can
 * reproduce it exactly from TFLM's output.
 */
#include <math.h>
#include <string.h>

#include "anomaly_data.h"
#include "board.h"
#include "console.h"
#include "mf_engine.h"

#define MFD_VIB_MAX_FEATURES (VIBF_AXES * VIBF_MAX_SEGMENT / 2)

static vibf_workspace_t mfdemo_vib_workspace;
static int32_t mfdemo_vib_features[MFD_VIB_MAX_FEATURES];
static int16_t mfdemo_vib_features16[MFD_VIB_MAX_FEATURES];

static int8_t mfdemo_quantize(double value, const mf_tensor_info *info)
{
    double q = rint(value / (double)info->scale) + (double)info->zero_point;
    if (q < -128.0) {
        return -128;
    }
    return q > 127.0 ? 127 : (int8_t)q;
}

static uint32_t mfdemo_micro(double value)
{
    return (uint32_t)(value * 1e6 + 0.5);
}

static int mfdemo_run_window(mf_model *model, uint32_t window, uint32_t *alarms)
{
    const vibf_config_t *config = &mfdemo_vib_config;
    size_t window_samples = (size_t)config->segment * (size_t)config->segments_per_window;
    size_t count = (size_t)VIBF_AXES * (size_t)config->bands;
    uint32_t start_ms = (uint32_t)((uint64_t)window * window_samples * 1000u / mfdemo_vib_sample_rate_hz);
    mf_tensor_info input;
    mf_tensor_info output;
    mf_status status;
    vibf_status_t feature_status;
    double score = 0.0;
    uint32_t cycles = mfb_cycles();
    size_t i;

    feature_status = vibf_window(&mfdemo_vib_samples[window * window_samples * VIBF_AXES], config, &mfdemo_vib_workspace,
                                 mfdemo_vib_features);
    if (feature_status != VIBF_OK) {
        mf_console_begin("error");
        mf_console_put(" features status=");
        mf_console_put_int((int32_t)feature_status);
        mf_console_end();
        return 1;
    }
    status = mf_input(model, 0, &input);
    if (status == MF_OK && (input.type != MF_INT8 || input.bytes != count)) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status != MF_OK) {
        mf_console_status("input", status);
        return 1;
    }
    for (i = 0; i < count; i++) {
        ((int8_t *)input.data)[i] = mfdemo_quantize(mfdemo_vib_features[i] / mfdemo_vib_feature_divisor, &input);
    }
    status = mf_invoke(model);
    if (status == MF_OK) {
        status = mf_output(model, 0, &output);
    }
    if (status == MF_OK && (output.type != MF_INT8 || output.bytes != count)) {
        status = MF_ERR_BAD_MODEL;
    }
    if (status != MF_OK) {
        mf_console_status("invoke", status);
        return 1;
    }
    for (i = 0; i < count; i++) {
        double reconstructed = (double)output.scale * (double)(((const int8_t *)output.data)[i] - output.zero_point);
        double error = reconstructed - mfdemo_vib_features[i] / mfdemo_vib_feature_divisor;
        score += error * error;
    }
    score /= (double)count;
    cycles = mfb_cycles() - cycles;

    for (i = 0; i < count; i++) {
        mfdemo_vib_features16[i] = (int16_t)mfdemo_vib_features[i];
    }
    mf_console_begin("window");
    mf_console_put(" ");
    mf_console_put_uint(window);
    mf_console_put(" start_ms=");
    mf_console_put_uint(start_ms);
    mf_console_put(" score_u=");
    mf_console_put_uint(mfdemo_micro(score));
    mf_console_put(" score=");
    mf_console_put_double_bits(score);
    mf_console_put(" cycles=");
    mf_console_put_uint(cycles);
    mf_console_put(" features=");
    mf_console_put_hex(mfdemo_vib_features16, count * sizeof mfdemo_vib_features16[0]);
    mf_console_end();
    if (score > mfdemo_vib_threshold) {
        (*alarms)++;
        mf_console_begin("alarm");
        mf_console_put(" ");
        mf_console_put_uint(window);
        mf_console_put(" start_ms=");
        mf_console_put_uint(start_ms);
        mf_console_put(" score_u=");
        mf_console_put_uint(mfdemo_micro(score));
        mf_console_put(" threshold_u=");
        mf_console_put_uint(mfdemo_micro(mfdemo_vib_threshold));
        mf_console_end();
    }
    return 0;
}

int main(void)
{
    mf_model *model = NULL;
    uint32_t window;
    uint32_t alarms = 0;
    mf_console_model(mfdemo_model_name, g_demo_model_data_len);
    if (mf_console_load(g_demo_model_data, g_demo_model_data_len, mfdemo_arena, mfdemo_arena_bytes, &model) != MF_OK) {
        return 1;
    }
    for (window = 0; window < mfdemo_vib_windows; window++) {
        if (mfdemo_run_window(model, window, &alarms) != 0) {
            return 1;
        }
    }
    mf_console_begin("done");
    mf_console_put(" windows=");
    mf_console_put_uint(mfdemo_vib_windows);
    mf_console_put(" alarms=");
    mf_console_put_uint(alarms);
    mf_console_end();
    return 0;
}
