/*
 * Fixed-point keyword-spotting features: log-mel energies or MFCCs of 16 kHz
 * int16 audio, computed with integer arithmetic only.
 *
 * Training (through the Python binding mcuforge.features) and the
 * device run this same code, so the features a model sees on the device are
 * bit-identical to the ones it was trained on.
 *
 * Framing follows MLPerf Tiny's KWS: 30 ms periodic-Hann windows (480
 * samples) every 20 ms (320 samples; the stride is the caller's choice, 1 to
 * KWSF_MAX_STRIDE samples), a 512-point FFT, 40 HTK-mel triangles between
 * 20 Hz and 4 kHz, then log2 of the mel power and, for MFCCs, a DCT-II scaled
 * like tf.signal.mfccs_from_log_mel_spectrograms. A one-second clip gives 49
 * frames at the default stride (33 at 480 samples, 25 at 640). A stride above
 * the window skips the samples between windows. Outputs are int16 in
 * Q(KWSF_FRAC_BITS) log2 units of int16-sample power, floored at 0 (power 1).
 *
 * No heap, no floating point, no host-only headers: the caller owns every
 * buffer (a kwsf_workspace_t for the FFT, a kwsf_stream_t for streaming).
 */
#ifndef KWS_FEATURES_H
#define KWS_FEATURES_H

#include <stdint.h>

#define KWSF_SAMPLE_RATE 16000
#define KWSF_WINDOW 480
/* The default frame stride (20 ms); kwsf_clip and kwsf_stream_init take any in 1..KWSF_MAX_STRIDE. */
#define KWSF_STRIDE 320
/* One second: frames further apart no longer describe one word. */
#define KWSF_MAX_STRIDE 16000
#define KWSF_FFT_SIZE 512
#define KWSF_MEL_BINS 40
#define KWSF_MAX_MFCC 13
#define KWSF_FRAC_BITS 6
#define KWSF_LOWER_HZ 20
#define KWSF_UPPER_HZ 4000

typedef enum {
    KWSF_OK = 0,
    KWSF_ERR_NULL = 1,      /* a required pointer is NULL */
    KWSF_ERR_KIND = 2,      /* unknown kwsf_kind_t */
    KWSF_ERR_COUNT = 3,     /* num_features does not fit the kind */
    KWSF_ERR_CAPACITY = 4,  /* the output holds fewer frames than the input makes */
    KWSF_ERR_LENGTH = 5,    /* negative sample count, or a frame count out of range */
    KWSF_ERR_STRIDE = 6     /* frame stride outside 1..KWSF_MAX_STRIDE samples */
} kwsf_status_t;

typedef enum {
    KWSF_LOGMEL = 0, /* KWSF_MEL_BINS log-mel energies per frame */
    KWSF_MFCC = 1    /* the first num_features (1..KWSF_MAX_MFCC) cepstral coefficients */
} kwsf_kind_t;

/* Scratch for one frame's FFT; reused across calls, contents meaningless between them. */
typedef struct {
    int32_t re[KWSF_FFT_SIZE];
    int32_t im[KWSF_FFT_SIZE];
} kwsf_workspace_t;

/* Sliding-window state: the last samples not yet consumed by a full window. A negative count is
   the samples still to skip before the next window starts (a stride above the window). */
typedef struct {
    int16_t pending[KWSF_WINDOW];
    int32_t count;
    int32_t stride;
} kwsf_stream_t;

/* Frames a clip of n_samples makes at `stride`: 1 + (n - WINDOW) / stride, or 0 if shorter than a
   window or the stride is out of range. */
int32_t kwsf_num_frames(int32_t n_samples, int32_t stride);

/* Features of one window of KWSF_WINDOW samples into out[num_features]. */
kwsf_status_t kwsf_frame(const int16_t *window, kwsf_kind_t kind, int32_t num_features,
                         kwsf_workspace_t *ws, int16_t *out);

/* Features of every full window of a clip, one every `stride` samples, into out[frame * num_features + i]. */
kwsf_status_t kwsf_clip(const int16_t *samples, int32_t n_samples, int32_t stride, kwsf_kind_t kind,
                        int32_t num_features, kwsf_workspace_t *ws, int16_t *out,
                        int32_t max_frames, int32_t *n_frames);

/* Start a stream at `stride`: its frames line up with kwsf_clip's at that stride on the concatenated audio. */
kwsf_status_t kwsf_stream_init(kwsf_stream_t *stream, int32_t stride);

/* Feed audio of any length; writes the frames it completes (at most max_frames) to out. */
kwsf_status_t kwsf_stream_push(kwsf_stream_t *stream, const int16_t *samples, int32_t n_samples,
                               kwsf_kind_t kind, int32_t num_features, kwsf_workspace_t *ws,
                               int16_t *out, int32_t max_frames, int32_t *n_frames);

typedef enum {
    KWSF_NORM_NONE = 0,          /* frames as computed */
    KWSF_NORM_MEAN = 1,          /* each column less its mean over the frames */
    KWSF_NORM_MEAN_VARIANCE = 2  /* and divided by its standard deviation: one deviation is 1 << KWSF_FRAC_BITS */
} kwsf_norm_t;

/* Most frames kwsf_normalize takes: the column sums stay within int32. */
#define KWSF_MAX_NORM_FRAMES 65535

/*
 * Per-clip cepstral mean (and variance) normalization of frames[n_frames * num_features], in
 * place. Means and quotients are rounded to nearest, ties away from zero; the variance is the
 * floored mean square deviation and the deviation its floored square root; a column that does
 * not vary becomes 0; results saturate to int16. A microphone's fixed spectral tilt adds the same
 * amount to a column in every frame, so the mean removes it; the variance also removes the level
 * of the column's changes.
 */
kwsf_status_t kwsf_normalize(int16_t *frames, int32_t n_frames, int32_t num_features, kwsf_norm_t norm);

#endif /* KWS_FEATURES_H */
