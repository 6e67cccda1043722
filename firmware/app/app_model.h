/*
 * The model as the firmware application runs it, whichever engine path the
 * image was built with (mcuforge.firmware.build links one of the two):
 * model_interpreter.c loads the .tflite with mf_load at boot; model_prepared.c
 * opens the image the host prepared (mf_prepared.h). Both report the arena in
 * the console protocol ("MF arena used=.. size=..") or the load error.
 */
#ifndef MF_APP_MODEL_H
#define MF_APP_MODEL_H

#include <stddef.h>

#include "mf_engine.h"

/* Loads or opens the model in the image's arena; prints the arena or error line. */
mf_status mf_app_model_open(void);
mf_status mf_app_model_input(size_t index, mf_tensor_info *info);
mf_status mf_app_model_invoke(void);
size_t mf_app_model_output_count(void);
mf_status mf_app_model_output(size_t index, mf_tensor_info *info);

#endif /* MF_APP_MODEL_H */
