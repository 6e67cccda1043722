/*
 * The firmware application: opens the model in the arena (app_model.h: the
 * interpreter or a prepared image), runs every input
 * vector the image carries and reports on the board's console in the console
 * protocol (console.h), parsed by mcuforge.firmware.console:
 *
 *   MF model <name> bytes=<model bytes>
 *   MF input <source> vectors=<n> bytes=<bytes per vector>
 *   MF arena used=<bytes> size=<bytes>
 *   MF output <vector> <output> <TYPE> <d0>x<d1>... <hex bytes>
 *   MF top <vector> <rank> <index> <label> <raw value>
 *   MF cycles <vector> <cycles>
 *   MF done
 *
 * A failure prints "MF error <what> <status name> ..." and returns 1.
 */
#include <string.h>

#include "app.h"
#include "app_model.h"
#include "board.h"
#include "console.h"
#include "mf_engine.h"

#define MF_APP_TOP_K 3u

/* The bench plugin counts instructions between calls to this function. */
__attribute__((noinline)) void mf_app_mark(void)
{
    __asm__ volatile("" ::: "memory");
}

static void mf_app_put_tensor(uint32_t vector, uint32_t index, const mf_tensor_info *info)
{
    int32_t d;
    mf_console_begin("output");
    mf_console_put(" ");
    mf_console_put_uint(vector);
    mf_console_put(" ");
    mf_console_put_uint(index);
    mf_console_put(" ");
    mf_console_put(mf_type_name((int32_t)info->type));
    mf_console_put(" ");
    for (d = 0; d < info->rank; d++) {
        if (d > 0) {
            mf_console_put("x");
        }
        mf_console_put_int(info->dims[d]);
    }
    mf_console_put(" ");
    mf_console_put_hex(info->data, info->bytes);
    mf_console_end();
}

/* The element as an int32 for ranking; 0 for types top-k does not rank. */
static int32_t mf_app_element(const mf_tensor_info *info, size_t index)
{
    switch (info->type) {
    case MF_INT8:
        return ((const int8_t *)info->data)[index];
    case MF_UINT8:
        return ((const uint8_t *)info->data)[index];
    case MF_INT16:
        return ((const int16_t *)info->data)[index];
    case MF_INT32:
        return ((const int32_t *)info->data)[index];
    default:
        return 0;
    }
}

static size_t mf_app_element_size(mf_dtype type)
{
    switch (type) {
    case MF_INT8:
    case MF_UINT8:
    case MF_BOOL:
        return 1u;
    case MF_INT16:
        return 2u;
    case MF_INT64:
        return 8u;
    default:
        return 4u;
    }
}

/* Top-k of an integer output by raw value (quantization with a positive
 * scale keeps the order); ties go to the lower index, as numpy's argsort. */
static void mf_app_put_top(uint32_t vector, const mf_tensor_info *info)
{
    size_t count = info->bytes / mf_app_element_size(info->type);
    size_t chosen[MF_APP_TOP_K];
    size_t rank;
    size_t k = count < MF_APP_TOP_K ? count : MF_APP_TOP_K;
    for (rank = 0; rank < k; rank++) {
        size_t best = count;
        size_t i;
        for (i = 0; i < count; i++) {
            size_t r;
            int taken = 0;
            for (r = 0; r < rank; r++) {
                taken |= chosen[r] == i;
            }
            if (!taken && (best == count || mf_app_element(info, i) > mf_app_element(info, best))) {
                best = i;
            }
        }
        chosen[rank] = best;
        mf_console_begin("top");
        mf_console_put(" ");
        mf_console_put_uint(vector);
        mf_console_put(" ");
        mf_console_put_uint((uint32_t)rank);
        mf_console_put(" ");
        mf_console_put_uint((uint32_t)best);
        mf_console_put(" ");
        mf_console_put(best < mf_app_label_count ? mf_app_labels[best] : "-");
        mf_console_put(" ");
        mf_console_put_int(mf_app_element(info, best));
        mf_console_end();
    }
}

int main(void)
{
    mf_tensor_info input;
    mf_status status;
    uint32_t vector;

    mf_console_model(mf_app_model_name, g_app_model_data_len);
    mf_console_begin("input");
    mf_console_put(" ");
    mf_console_put(mf_app_input_source);
    mf_console_put(" vectors=");
    mf_console_put_uint(mf_app_vector_count);
    mf_console_put(" bytes=");
    mf_console_put_uint(mf_app_vector_bytes);
    mf_console_end();

    status = mf_app_model_open();
    if (status != MF_OK) {
        return 1;
    }

    status = mf_app_model_input(0, &input);
    if (status != MF_OK) {
        mf_console_status("input", status);
        return 1;
    }
    if (input.bytes != mf_app_vector_bytes) {
        mf_console_begin("error");
        mf_console_put(" input-size model=");
        mf_console_put_uint((uint32_t)input.bytes);
        mf_console_put(" vectors=");
        mf_console_put_uint(mf_app_vector_bytes);
        mf_console_end();
        return 1;
    }

    for (vector = 0; vector < mf_app_vector_count; vector++) {
        uint32_t start;
        uint32_t cycles;
        size_t o;
        /* Refilled every time: the planner may reuse the input's memory. */
        memcpy(input.data, &mf_app_vectors[vector * mf_app_vector_bytes], mf_app_vector_bytes);
        mf_app_mark();
        start = mfb_cycles();
        status = mf_app_model_invoke();
        cycles = mfb_cycles() - start;
        mf_app_mark();
        if (status != MF_OK) {
            mf_console_status("invoke", status);
            return 1;
        }
        for (o = 0; o < mf_app_model_output_count(); o++) {
            mf_tensor_info output;
            status = mf_app_model_output(o, &output);
            if (status != MF_OK) {
                mf_console_status("output", status);
                return 1;
            }
            mf_app_put_tensor(vector, (uint32_t)o, &output);
            if (o == 0 && output.type != MF_FLOAT32) {
                mf_app_put_top(vector, &output);
            }
        }
        mf_console_begin("cycles");
        mf_console_put(" ");
        mf_console_put_uint(vector);
        mf_console_put(" ");
        mf_console_put_uint(cycles);
        mf_console_end();
    }
    mf_console_begin("done");
    mf_console_end();
    return 0;
}
