/* The application's model through the interpreter: the .tflite loaded with mf_load at boot. */
#include "app.h"
#include "app_model.h"
#include "console.h"

static mf_model *mf_app_loaded;

mf_status mf_app_model_open(void)
{
    return mf_console_load(g_app_model_data, g_app_model_data_len, mf_app_arena, mf_app_arena_bytes, &mf_app_loaded);
}

mf_status mf_app_model_input(size_t index, mf_tensor_info *info)
{
    return mf_input(mf_app_loaded, index, info);
}

mf_status mf_app_model_invoke(void)
{
    return mf_invoke(mf_app_loaded);
}

size_t mf_app_model_output_count(void)
{
    return mf_output_count(mf_app_loaded);
}

mf_status mf_app_model_output(size_t index, mf_tensor_info *info)
{
    return mf_output(mf_app_loaded, index, info);
}
