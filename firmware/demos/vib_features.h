/*
 * Vibration features on the device: the integer port of
 * mcuforge.train.datasets.vibration.window_features, bit for bit.
 *
 * Per axis and segment of N samples with sum S: xw = round((N*x - S) * hann
 * / 2^(15 + log2 N - 4)); re, im = round(DFT of xw with the Q15 tables /
 * 2^17) for bins 0 .. N/2 - 1; power = re^2 + im^2 summed over the segments
 * and the bins of each band (int64); feature = log2_q8(power), a
 * piecewise-linear log2 in Q8. The model's float feature is that value / 4096.
 *
 * The tables come from the data set's own functions (hann_q15 and the first
 * column of dft_tables_q15, which holds every table value: cos and sin of
 * 2*pi*n*k/N depend on n*k mod N only). No heap, no floating point.
 */
#ifndef VIBF_FEATURES_H
#define VIBF_FEATURES_H

#include <stdint.h>

#define VIBF_AXES 2
#define VIBF_MAX_SEGMENT 1024
#define VIBF_WINDOWED_FRACTION_BITS 4
#define VIBF_DFT_SHIFT 17
#define VIBF_LOG2_FRACTION_BITS 8

typedef enum {
    VIBF_OK = 0,
    VIBF_ERR_NULL = 1,    /* a required pointer is NULL */
    VIBF_ERR_SEGMENT = 2, /* segment is not a power of two in 4 .. VIBF_MAX_SEGMENT */
    VIBF_ERR_BANDS = 3,   /* bands does not divide segment / 2 */
    VIBF_ERR_COUNT = 4    /* segments_per_window < 1 */
} vibf_status_t;

typedef struct {
    int32_t segment;             /* DFT length N */
    int32_t segments_per_window; /* segments whose powers add up in one window */
    int32_t bands;               /* bands per axis */
    const int16_t *hann_q15;     /* [segment] */
    const int16_t *cos_q15;      /* [segment]: round(32767 cos(2 pi m / N)) */
    const int16_t *sin_q15;      /* [segment]: round(32767 sin(2 pi m / N)) */
} vibf_config_t;

/* Scratch for one window; contents meaningless between calls. */
typedef struct {
    int64_t windowed[VIBF_MAX_SEGMENT];
    int64_t power[VIBF_AXES][VIBF_MAX_SEGMENT / 2];
} vibf_workspace_t;

/* Piecewise-linear log2 in Q8 of a non-negative power: exponent * 256 + linear mantissa; 0 -> 0. */
int32_t vibf_log2_q8(int64_t power);

/* Features of one window of segment * segments_per_window samples, interleaved
 * (radial, axial), into out[axis * bands + band]. */
vibf_status_t vibf_window(const int16_t *samples, const vibf_config_t *config, vibf_workspace_t *ws, int32_t *out);

#endif /* VIBF_FEATURES_H */
