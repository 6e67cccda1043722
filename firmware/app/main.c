/*
 * The firmware application: loads the model into the arena, runs every input
 * vector the image carries and reports on the board's console, one
 * "MF <key> ..." line per fact so that build.py can parse the run:
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
#include "board.h"
#include "mf_engine.h"

#define MF_APP_TOP_K 3u

static void mf_app_put(const char *text)
{
    mfb_write(text, strlen(text));
}

static void mf_app_put_uint(uint32_t value)
{
    char digits[10];
    size_t count = 0;
    do {
        digits[sizeof digits - 1 - count] = (char)('0' + value % 10u);
        value /= 10u;
        count++;
    } while (value != 0u);
    mfb_write(&digits[sizeof digits - count], count);
}

static void mf_app_put_int(int32_t value)
{
    if (value < 0) {
        mf_app_put("-");
        mf_app_put_uint(0u - (uint32_t)value);
    } else {
        mf_app_put_uint((uint32_t)value);
    }
}

/* The bench plugin counts instructions between calls to this function. */
__attribute__((noinline)) void mf_app_mark(void)
{
    __asm__ volatile("" ::: "memory");
}

static void mf_app_put_status(const char *what, mf_status status)
{
    mf_app_put("MF error ");
    mf_app_put(what);
    mf_app_put(" ");
    mf_app_put(mf_status_name(status));
    mf_app_put("\n");
}

static void mf_app_put_fault(mf_status status, const mf_fault *fault)
{
    mf_app_put("MF error load ");
    mf_app_put(mf_status_name(status));
    mf_app_put(" op=");
    mf_app_put_int(fault->op_index);
    mf_app_put(" tensor=");
    mf_app_put_int(fault->tensor_index);
    mf_app_put(" name=");
    mf_app_put(fault->name[0] != '\0' ? fault->name : "-");
    mf_app_put(" arena_needed=");
    mf_app_put_uint((uint32_t)fault->arena_needed);
    mf_app_put("\n");
}

static void mf_app_put_tensor(uint32_t vector, uint32_t index, const mf_tensor_info *info)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *bytes = (const unsigned char *)info->data;
    int32_t d;
    size_t i;
    mf_app_put("MF output ");
    mf_app_put_uint(vector);
    mf_app_put(" ");
    mf_app_put_uint(index);
    mf_app_put(" ");
    mf_app_put(mf_type_name((int32_t)info->type));
    mf_app_put(" ");
    for (d = 0; d < info->rank; d++) {
        if (d > 0) {
            mf_app_put("x");
        }
        mf_app_put_int(info->dims[d]);
    }
    mf_app_put(" ");
    for (i = 0; i < info->bytes; i++) {
        char pair[2];
        pair[0] = hex[bytes[i] >> 4];
        pair[1] = hex[bytes[i] & 0xFu];
        mfb_write(pair, 2);
    }
    mf_app_put("\n");
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
        mf_app_put("MF top ");
        mf_app_put_uint(vector);
        mf_app_put(" ");
        mf_app_put_uint((uint32_t)rank);
        mf_app_put(" ");
        mf_app_put_uint((uint32_t)best);
        mf_app_put(" ");
        mf_app_put(best < mf_app_label_count ? mf_app_labels[best] : "-");
        mf_app_put(" ");
        mf_app_put_int(mf_app_element(info, best));
        mf_app_put("\n");
    }
}

int main(void)
{
    mf_model *model = NULL;
    mf_fault fault;
    mf_tensor_info input;
    mf_status status;
    uint32_t vector;

    mf_app_put("MF model ");
    mf_app_put(mf_app_model_name);
    mf_app_put(" bytes=");
    mf_app_put_uint(g_app_model_data_len);
    mf_app_put("\nMF input ");
    mf_app_put(mf_app_input_source);
    mf_app_put(" vectors=");
    mf_app_put_uint(mf_app_vector_count);
    mf_app_put(" bytes=");
    mf_app_put_uint(mf_app_vector_bytes);
    mf_app_put("\n");

    status = mf_load(g_app_model_data, g_app_model_data_len, mf_app_arena, mf_app_arena_bytes, &model, &fault);
    if (status != MF_OK) {
        mf_app_put_fault(status, &fault);
        return 1;
    }
    mf_app_put("MF arena used=");
    mf_app_put_uint((uint32_t)mf_arena_used(model));
    mf_app_put(" size=");
    mf_app_put_uint(mf_app_arena_bytes);
    mf_app_put("\n");

    status = mf_input(model, 0, &input);
    if (status != MF_OK) {
        mf_app_put_status("input", status);
        return 1;
    }
    if (input.bytes != mf_app_vector_bytes) {
        mf_app_put("MF error input-size model=");
        mf_app_put_uint((uint32_t)input.bytes);
        mf_app_put(" vectors=");
        mf_app_put_uint(mf_app_vector_bytes);
        mf_app_put("\n");
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
        status = mf_invoke(model);
        cycles = mfb_cycles() - start;
        mf_app_mark();
        if (status != MF_OK) {
            mf_app_put_status("invoke", status);
            return 1;
        }
        for (o = 0; o < mf_output_count(model); o++) {
            mf_tensor_info output;
            status = mf_output(model, o, &output);
            if (status != MF_OK) {
                mf_app_put_status("output", status);
                return 1;
            }
            mf_app_put_tensor(vector, (uint32_t)o, &output);
            if (o == 0 && output.type != MF_FLOAT32) {
                mf_app_put_top(vector, &output);
            }
        }
        mf_app_put("MF cycles ");
        mf_app_put_uint(vector);
        mf_app_put(" ");
        mf_app_put_uint(cycles);
        mf_app_put("\n");
    }
    mf_app_put("MF done\n");
    return 0;
}
