/* What mcuforge.firmware.demos generates for the keyword-spotting demo (kws_stream_data.c). */
#ifndef MFD_KWS_DATA_H
#define MFD_KWS_DATA_H

#include <stdint.h>

#include "kws_features.h"

extern const unsigned char g_demo_model_data[];
extern const unsigned int g_demo_model_data_len;
extern const char mfdemo_model_name[];
extern unsigned char mfdemo_arena[];
extern const unsigned int mfdemo_arena_bytes;
/* The audio: 16 kHz mono int16 PCM. */
extern const int16_t mfdemo_kws_audio[];
extern const uint32_t mfdemo_kws_audio_samples;
extern const kwsf_kind_t mfdemo_kws_kind;
extern const int32_t mfdemo_kws_features;     /* per frame */
extern const int32_t mfdemo_kws_stride;       /* samples between frames (KWSF_STRIDE: 20 ms), as the model was trained */
extern const int32_t mfdemo_kws_frames;       /* per model input (49 for one second) */
extern const int32_t mfdemo_kws_hop_frames;   /* frames between inferences */
extern const int32_t mfdemo_kws_average;      /* inferences whose outputs are averaged */
extern const int32_t mfdemo_kws_threshold_q;  /* averaged int8 output a keyword must reach */
extern const int32_t mfdemo_kws_suppress_ms;  /* quiet time after a detection */
extern const int32_t mfdemo_kws_first_keyword; /* classes below are silence and unknown */
extern const int32_t mfdemo_kws_print_frames; /* 1: print every feature frame */
extern const kwsf_norm_t mfdemo_kws_normalization; /* of each window, as the model was trained (feature_normalization) */
extern const uint32_t mfdemo_kws_label_count;
extern const char *const mfdemo_kws_labels[];

#endif /* MFD_KWS_DATA_H */
