/* What mcuforge.firmware.demos generates for the vibration demo (anomaly_data.c). */
#ifndef MFD_ANOMALY_DATA_H
#define MFD_ANOMALY_DATA_H

#include <stdint.h>

#include "vib_features.h"

extern const unsigned char g_demo_model_data[];
extern const unsigned int g_demo_model_data_len;
extern const char mfdemo_model_name[];
extern unsigned char mfdemo_arena[];
extern const unsigned int mfdemo_arena_bytes;
/* The recording: windows * segment * segments_per_window samples, (radial, axial) interleaved. */
extern const int16_t mfdemo_vib_samples[];
extern const uint32_t mfdemo_vib_windows;
extern const uint32_t mfdemo_vib_sample_rate_hz;
extern const vibf_config_t mfdemo_vib_config;
/* Anomaly score above which a window raises the alarm (calibrated on normal data). */
extern const double mfdemo_vib_threshold;
/* Model float feature = integer feature / this. */
extern const double mfdemo_vib_feature_divisor;

#endif /* MFD_ANOMALY_DATA_H */
