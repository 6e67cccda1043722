#include "vib_features.h"

#include <stddef.h>

/* value / 2^bits rounded half up (floor of value / 2^bits + 1/2), without
 * shifting a negative number, whose result C leaves to the implementation. */
static int64_t vibf_round_shift(int64_t value, int32_t bits)
{
    int64_t biased = value + ((int64_t)1 << (bits - 1));
    int64_t unit = (int64_t)1 << bits;
    if (biased >= 0) {
        return biased >> bits;
    }
    return -((-biased + unit - 1) >> bits);
}

static int32_t vibf_floor_log2(uint64_t value)
{
    int32_t exponent = 0;
    while (value > 1u) {
        value >>= 1;
        exponent++;
    }
    return exponent;
}

int32_t vibf_log2_q8(int64_t power)
{
    int32_t exponent;
    int32_t shift;
    int64_t mantissa;
    if (power <= 0) {
        return 0;
    }
    exponent = vibf_floor_log2((uint64_t)power);
    shift = exponent - VIBF_LOG2_FRACTION_BITS;
    mantissa = shift >= 0 ? power >> shift : power << -shift;
    return exponent * (1 << VIBF_LOG2_FRACTION_BITS) + (int32_t)mantissa - (1 << VIBF_LOG2_FRACTION_BITS);
}

static vibf_status_t vibf_check(const vibf_config_t *config)
{
    int32_t n = config->segment;
    if (config->hann_q15 == NULL || config->cos_q15 == NULL || config->sin_q15 == NULL) {
        return VIBF_ERR_NULL;
    }
    if (n < 4 || n > VIBF_MAX_SEGMENT || (n & (n - 1)) != 0) {
        return VIBF_ERR_SEGMENT;
    }
    if (config->bands < 1 || (n / 2) % config->bands != 0) {
        return VIBF_ERR_BANDS;
    }
    if (config->segments_per_window < 1) {
        return VIBF_ERR_COUNT;
    }
    return VIBF_OK;
}

/* Adds one segment's DFT power of one axis to ws->power[axis]. */
static void vibf_segment_power(const int16_t *samples, int32_t axis, const vibf_config_t *config,
                               vibf_workspace_t *ws)
{
    int32_t n = config->segment;
    int32_t shift = 15 + vibf_floor_log2((uint64_t)n) - VIBF_WINDOWED_FRACTION_BITS;
    int64_t sum = 0;
    int32_t i;
    int32_t k;
    for (i = 0; i < n; i++) {
        sum += samples[i * VIBF_AXES + axis];
    }
    for (i = 0; i < n; i++) {
        int64_t centred = (int64_t)samples[i * VIBF_AXES + axis] * n - sum;
        ws->windowed[i] = vibf_round_shift(centred * config->hann_q15[i], shift);
    }
    for (k = 0; k < n / 2; k++) {
        int64_t re = 0;
        int64_t im = 0;
        int32_t index = 0; /* i * k mod n */
        for (i = 0; i < n; i++) {
            re += ws->windowed[i] * config->cos_q15[index];
            im += ws->windowed[i] * config->sin_q15[index];
            index = (index + k) & (n - 1);
        }
        re = vibf_round_shift(re, VIBF_DFT_SHIFT);
        im = vibf_round_shift(im, VIBF_DFT_SHIFT);
        ws->power[axis][k] += re * re + im * im;
    }
}

vibf_status_t vibf_window(const int16_t *samples, const vibf_config_t *config, vibf_workspace_t *ws, int32_t *out)
{
    vibf_status_t status;
    int32_t axis;
    int32_t segment;
    int32_t band;
    int32_t bins_per_band;
    if (samples == NULL || config == NULL || ws == NULL || out == NULL) {
        return VIBF_ERR_NULL;
    }
    status = vibf_check(config);
    if (status != VIBF_OK) {
        return status;
    }
    bins_per_band = config->segment / 2 / config->bands;
    for (axis = 0; axis < VIBF_AXES; axis++) {
        int32_t k;
        for (k = 0; k < config->segment / 2; k++) {
            ws->power[axis][k] = 0;
        }
        for (segment = 0; segment < config->segments_per_window; segment++) {
            vibf_segment_power(&samples[(size_t)segment * (size_t)config->segment * VIBF_AXES], axis, config, ws);
        }
        for (band = 0; band < config->bands; band++) {
            int64_t power = 0;
            for (k = band * bins_per_band; k < (band + 1) * bins_per_band; k++) {
                power += ws->power[axis][k];
            }
            out[axis * config->bands + band] = vibf_log2_q8(power);
        }
    }
    return VIBF_OK;
}
