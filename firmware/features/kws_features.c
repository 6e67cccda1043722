/* Fixed-point log-mel / MFCC extractor: see kws_features.h for the definition of the features. */
#include "kws_features.h"

#include "kws_features_tables.h"

/* FFT input is normalized so the largest windowed sample lies in [2^20, 2^21): nine radix-2
   stages grow magnitudes at most 2^9-fold, so every value stays below 2^30 in int32, and by
   Parseval a frame's total power stays below 512 * 480 * 2^42 < 2^60, so mel sums fit uint64. */
#define KWSF_NORM_BITS 21
#define KWSF_FFT_LOG2 9
#define KWSF_LOG_FRAC 16

/* Round-to-nearest (ties away from zero) right shift that is defined for negative values. */
static int64_t kwsf_round_shift(int64_t value, int shift)
{
    const int64_t half = (int64_t)1 << (shift - 1);
    return value >= 0 ? (value + half) >> shift : -((-value + half) >> shift);
}

static int kwsf_bit_length(uint64_t value)
{
    int bits = 0;
    while (value != 0u) {
        value >>= 1;
        bits++;
    }
    return bits;
}

/* log2(value) in Q16 for value >= 1, by repeated squaring of the normalized mantissa. */
static int32_t kwsf_log2_q16(uint64_t value)
{
    const int msb = kwsf_bit_length(value) - 1;
    uint64_t mantissa = msb >= 30 ? value >> (msb - 30) : value << (30 - msb); /* Q30, [1, 2) */
    int32_t result = (int32_t)msb * ((int32_t)1 << KWSF_LOG_FRAC);
    int bit;
    for (bit = KWSF_LOG_FRAC - 1; bit >= 0; bit--) {
        mantissa = (mantissa * mantissa) >> 30;
        if (mantissa >= ((uint64_t)1 << 31)) {
            mantissa >>= 1;
            result += (int32_t)1 << bit;
        }
    }
    return result;
}

static int16_t kwsf_saturate16(int64_t value)
{
    if (value > INT16_MAX) {
        return INT16_MAX;
    }
    if (value < INT16_MIN) {
        return INT16_MIN;
    }
    return (int16_t)value;
}

static unsigned kwsf_bit_reverse(unsigned index)
{
    unsigned reversed = 0u;
    int bit;
    for (bit = 0; bit < KWSF_FFT_LOG2; bit++) {
        reversed = (reversed << 1) | ((index >> bit) & 1u);
    }
    return reversed;
}

/* Window the frame into ws->re in bit-reversed order, normalized; returns the shift applied. */
static int kwsf_window_normalized(const int16_t *window, kwsf_workspace_t *ws)
{
    uint64_t peak = 0u;
    int shift;
    unsigned n;
    for (n = 0; n < KWSF_WINDOW; n++) {
        const int64_t product = (int64_t)window[n] * kwsf_hann_q30[n];
        const uint64_t magnitude = product < 0 ? (uint64_t)(-product) : (uint64_t)product;
        if (magnitude > peak) {
            peak = magnitude;
        }
    }
    shift = peak == 0u ? 0 : KWSF_NORM_BITS - kwsf_bit_length(peak);
    for (n = 0; n < KWSF_FFT_SIZE; n++) {
        const unsigned slot = kwsf_bit_reverse(n);
        int64_t value = 0;
        if (n < KWSF_WINDOW) {
            value = (int64_t)window[n] * kwsf_hann_q30[n];
            value = shift >= 0 ? value * ((int64_t)1 << shift) : kwsf_round_shift(value, -shift);
        }
        ws->re[slot] = (int32_t)value;
        ws->im[slot] = 0;
    }
    return shift;
}

/* In-place radix-2 decimation-in-time FFT on bit-reversed input, Q30 twiddles. */
static void kwsf_fft(kwsf_workspace_t *ws)
{
    unsigned size;
    for (size = 2u; size <= KWSF_FFT_SIZE; size <<= 1) {
        const unsigned half = size >> 1;
        const unsigned step = KWSF_FFT_SIZE / size;
        unsigned start;
        for (start = 0u; start < KWSF_FFT_SIZE; start += size) {
            unsigned k;
            for (k = 0u; k < half; k++) {
                const int64_t c = kwsf_cos_q30[k * step];
                const int64_t s = kwsf_sin_q30[k * step];
                const unsigned top = start + k;
                const unsigned bottom = top + half;
                /* (br + i bi) * (c - i s) */
                const int32_t tr = (int32_t)kwsf_round_shift(ws->re[bottom] * c + ws->im[bottom] * s, 30);
                const int32_t ti = (int32_t)kwsf_round_shift(ws->im[bottom] * c - ws->re[bottom] * s, 30);
                ws->re[bottom] = ws->re[top] - tr;
                ws->im[bottom] = ws->im[top] - ti;
                ws->re[top] += tr;
                ws->im[top] += ti;
            }
        }
    }
}

static kwsf_status_t kwsf_check(kwsf_kind_t kind, int32_t num_features)
{
    if (kind == KWSF_LOGMEL) {
        return num_features == KWSF_MEL_BINS ? KWSF_OK : KWSF_ERR_COUNT;
    }
    if (kind == KWSF_MFCC) {
        return (num_features >= 1 && num_features <= KWSF_MAX_MFCC) ? KWSF_OK : KWSF_ERR_COUNT;
    }
    return KWSF_ERR_KIND;
}

static void kwsf_compute(const int16_t *window, kwsf_kind_t kind, int32_t num_features,
                         kwsf_workspace_t *ws, int16_t *out)
{
    int32_t log_mel_q16[KWSF_MEL_BINS];
    /* The FFT sees samples * window * 2^(30 + shift), so log2 of true power = log2(sum) - 2 * (30 + shift). */
    const int shift = kwsf_window_normalized(window, ws);
    const int32_t offset = (int32_t)(-2 * (30 + shift));
    int m;
    kwsf_fft(ws);
    for (m = 0; m < KWSF_MEL_BINS; m++) {
        const int16_t *weights = &kwsf_mel_weights_q15[kwsf_mel_offset[m]];
        uint64_t sum = 0u;
        int j;
        for (j = 0; j < kwsf_mel_num_bins[m]; j++) {
            const int bin = kwsf_mel_first_bin[m] + j;
            const int64_t re = ws->re[bin];
            const int64_t im = ws->im[bin];
            const uint64_t power = (uint64_t)(re * re + im * im);
            const uint64_t weight = (uint64_t)weights[j];
            /* power * weight / 2^15 without the 76-bit product */
            sum += (power >> 15) * weight + (((power & 0x7FFFu) * weight) >> 15);
        }
        log_mel_q16[m] = 0;
        if (sum != 0u) {
            const int32_t value = kwsf_log2_q16(sum) + offset * ((int32_t)1 << KWSF_LOG_FRAC);
            log_mel_q16[m] = value > 0 ? value : 0;
        }
    }
    if (kind == KWSF_LOGMEL) {
        for (m = 0; m < KWSF_MEL_BINS; m++) {
            out[m] = kwsf_saturate16(kwsf_round_shift(log_mel_q16[m], KWSF_LOG_FRAC - KWSF_FRAC_BITS));
        }
        return;
    }
    for (m = 0; m < num_features; m++) {
        int64_t acc = 0;
        int j;
        for (j = 0; j < KWSF_MEL_BINS; j++) {
            acc += (int64_t)kwsf_dct_q15[m * KWSF_MEL_BINS + j] * log_mel_q16[j];
        }
        out[m] = kwsf_saturate16(kwsf_round_shift(acc, 15 + KWSF_LOG_FRAC - KWSF_FRAC_BITS));
    }
}

static int kwsf_stride_valid(int32_t stride)
{
    return stride >= 1 && stride <= KWSF_MAX_STRIDE;
}

int32_t kwsf_num_frames(int32_t n_samples, int32_t stride)
{
    return (n_samples < KWSF_WINDOW || !kwsf_stride_valid(stride)) ? 0 : 1 + (n_samples - KWSF_WINDOW) / stride;
}

kwsf_status_t kwsf_frame(const int16_t *window, kwsf_kind_t kind, int32_t num_features,
                         kwsf_workspace_t *ws, int16_t *out)
{
    kwsf_status_t status;
    if (window == 0 || ws == 0 || out == 0) {
        return KWSF_ERR_NULL;
    }
    status = kwsf_check(kind, num_features);
    if (status != KWSF_OK) {
        return status;
    }
    kwsf_compute(window, kind, num_features, ws, out);
    return KWSF_OK;
}

kwsf_status_t kwsf_clip(const int16_t *samples, int32_t n_samples, int32_t stride, kwsf_kind_t kind,
                        int32_t num_features, kwsf_workspace_t *ws, int16_t *out,
                        int32_t max_frames, int32_t *n_frames)
{
    kwsf_status_t status;
    int32_t frames;
    int32_t f;
    if (samples == 0 || ws == 0 || out == 0 || n_frames == 0) {
        return KWSF_ERR_NULL;
    }
    if (n_samples < 0) {
        return KWSF_ERR_LENGTH;
    }
    if (!kwsf_stride_valid(stride)) {
        return KWSF_ERR_STRIDE;
    }
    status = kwsf_check(kind, num_features);
    if (status != KWSF_OK) {
        return status;
    }
    frames = kwsf_num_frames(n_samples, stride);
    if (frames > max_frames) {
        return KWSF_ERR_CAPACITY;
    }
    for (f = 0; f < frames; f++) {
        kwsf_compute(&samples[f * stride], kind, num_features, ws, &out[f * num_features]);
    }
    *n_frames = frames;
    return KWSF_OK;
}

kwsf_status_t kwsf_stream_init(kwsf_stream_t *stream, int32_t stride)
{
    if (stream == 0) {
        return KWSF_ERR_NULL;
    }
    if (!kwsf_stride_valid(stride)) {
        return KWSF_ERR_STRIDE;
    }
    stream->count = 0;
    stream->stride = stride;
    return KWSF_OK;
}

kwsf_status_t kwsf_stream_push(kwsf_stream_t *stream, const int16_t *samples, int32_t n_samples,
                               kwsf_kind_t kind, int32_t num_features, kwsf_workspace_t *ws,
                               int16_t *out, int32_t max_frames, int32_t *n_frames)
{
    kwsf_status_t status;
    int32_t produced = 0;
    int32_t i;
    if (stream == 0 || (samples == 0 && n_samples > 0) || ws == 0 || out == 0 || n_frames == 0) {
        return KWSF_ERR_NULL;
    }
    if (n_samples < 0) {
        return KWSF_ERR_LENGTH;
    }
    status = kwsf_check(kind, num_features);
    if (status != KWSF_OK) {
        return status;
    }
    if (!kwsf_stride_valid(stream->stride)) {
        return KWSF_ERR_STRIDE; /* not initialized by kwsf_stream_init */
    }
    /* Check capacity before consuming anything, so a refused push leaves the stream unchanged.
       A negative count (samples to skip) counts the same way: the next window starts at 0. */
    if (kwsf_num_frames(stream->count + n_samples, stream->stride) > max_frames) {
        return KWSF_ERR_CAPACITY;
    }
    for (i = 0; i < n_samples; i++) {
        if (stream->count < 0) {
            stream->count++; /* between windows: a sample no frame covers */
            continue;
        }
        stream->pending[stream->count++] = samples[i];
        if (stream->count == KWSF_WINDOW) {
            const int32_t kept = KWSF_WINDOW - stream->stride;
            int32_t j;
            kwsf_compute(stream->pending, kind, num_features, ws, &out[produced * num_features]);
            produced++;
            for (j = 0; j < kept; j++) {
                stream->pending[j] = stream->pending[j + stream->stride];
            }
            stream->count = kept;
        }
    }
    *n_frames = produced;
    return KWSF_OK;
}

/* a / b rounded to nearest, ties away from zero, for b > 0 */
static int32_t kwsf_divide_rounded(int32_t a, int32_t b)
{
    const int32_t magnitude = ((a < 0 ? -a : a) + b / 2) / b;
    return a < 0 ? -magnitude : magnitude;
}

/* floor(sqrt(value)), bit by bit (no division, no floating point) */
static int32_t kwsf_isqrt(uint64_t value)
{
    uint64_t root = 0u;
    uint64_t bit = (uint64_t)1 << 62;
    while (bit > value) {
        bit >>= 2;
    }
    while (bit != 0u) {
        if (value >= root + bit) {
            value -= root + bit;
            root = (root >> 1) + bit;
        } else {
            root >>= 1;
        }
        bit >>= 2;
    }
    return (int32_t)root;
}

kwsf_status_t kwsf_normalize(int16_t *frames, int32_t n_frames, int32_t num_features, kwsf_norm_t norm)
{
    int32_t i;
    if (frames == 0) {
        return KWSF_ERR_NULL;
    }
    if (norm != KWSF_NORM_NONE && norm != KWSF_NORM_MEAN && norm != KWSF_NORM_MEAN_VARIANCE) {
        return KWSF_ERR_KIND;
    }
    if (n_frames < 1 || n_frames > KWSF_MAX_NORM_FRAMES) {
        return KWSF_ERR_LENGTH;
    }
    if (num_features < 1 || num_features > KWSF_MEL_BINS) {
        return KWSF_ERR_COUNT;
    }
    for (i = 0; i < num_features && norm != KWSF_NORM_NONE; i++) {
        int32_t sum = 0;
        int32_t deviation = 0;
        int32_t mean;
        int32_t f;
        for (f = 0; f < n_frames; f++) {
            sum += frames[f * num_features + i];
        }
        mean = kwsf_divide_rounded(sum, n_frames);
        if (norm == KWSF_NORM_MEAN_VARIANCE) {
            uint64_t squares = 0u;
            for (f = 0; f < n_frames; f++) {
                const int64_t d = (int64_t)frames[f * num_features + i] - mean;
                squares += (uint64_t)(d * d);
            }
            deviation = kwsf_isqrt(squares / (uint64_t)n_frames);
        }
        for (f = 0; f < n_frames; f++) {
            int16_t *value = &frames[f * num_features + i];
            const int32_t centred = (int32_t)*value - mean;
            if (norm == KWSF_NORM_MEAN) {
                *value = kwsf_saturate16(centred);
            } else {
                /* |centred| < 2^17, so centred * 2^KWSF_FRAC_BITS fits int32 */
                *value = deviation == 0 ? 0 : kwsf_saturate16(kwsf_divide_rounded(centred * (1 << KWSF_FRAC_BITS), deviation));
            }
        }
    }
    return KWSF_OK;
}
