/* The application's model as a prepared image (mf_prepared.h): no flatbuffer
 * reader, planner or prepare on the device; the arena holds the activations alone. */
#include "app.h"
#include "app_model.h"
#include "console.h"
#include "mf_prepared.h"

static mf_prepared mf_app_runner;

mf_status mf_app_model_open(void)
{
    const mf_status status = mf_prepared_open(g_app_model_data, g_app_model_data_len, mf_app_arena, mf_app_arena_bytes,
                                              &mf_app_runner);
    if (status != MF_OK) {
        mf_console_begin("error");
        mf_console_put(" load ");
        mf_console_put(mf_status_name(status));
        mf_console_put(" arena_needed=");
        mf_console_put_uint((uint32_t)mf_prepared_arena_bytes(g_app_model_data, g_app_model_data_len));
        mf_console_end();
        return status;
    }
    mf_console_begin("arena");
    mf_console_put(" used=");
    mf_console_put_uint((uint32_t)mf_prepared_arena_bytes(g_app_model_data, g_app_model_data_len));
    mf_console_put(" size=");
    mf_console_put_uint(mf_app_arena_bytes);
    mf_console_end();
    return MF_OK;
}

mf_status mf_app_model_input(size_t index, mf_tensor_info *info)
{
    return mf_prepared_input(&mf_app_runner, index, info);
}

mf_status mf_app_model_invoke(void)
{
    return mf_prepared_invoke(&mf_app_runner);
}

size_t mf_app_model_output_count(void)
{
    return mf_prepared_output_count(&mf_app_runner);
}

mf_status mf_app_model_output(size_t index, mf_tensor_info *info)
{
    return mf_prepared_output(&mf_app_runner, index, info);
}
