/* Test firmware for a prepared image under QEMU: runs mf_model_image once on
 * test_input and prints "OUT v0 v1 ..." (the first output, int8), then exits.
 * mf_app_mark() brackets the inference for the qemu-icount plugin
 * (bench/firmware_icount.py counts instructions between its calls). */
#include "board.h"
#include "mf_prepared.h"

extern const uint32_t mf_model_image[];
extern const size_t mf_model_image_bytes;
extern const int8_t test_input[];
static uint8_t arena[MF_MODEL_IMAGE_ARENA_BYTES] __attribute__((aligned(16)));

static void put(const char *text)
{
    size_t n = 0;
    while (text[n] != '\0') {
        ++n;
    }
    mfb_write(text, n);
}

static void put_int(int32_t value)
{
    char digits[12];
    int n = 0;
    uint32_t magnitude = value < 0 ? 0u - (uint32_t)value : (uint32_t)value;
    do {
        digits[n++] = (char)('0' + magnitude % 10u);
        magnitude /= 10u;
    } while (magnitude != 0);
    if (value < 0) {
        put("-");
    }
    while (n > 0) {
        char c[2] = {digits[--n], '\0'};
        put(c);
    }
}

__attribute__((noinline)) void mf_app_mark(void) { __asm__ volatile(""); }

int main(void)
{
    mf_prepared runner;
    mf_tensor_info in;
    mf_tensor_info out;
    size_t i;
    if (mf_prepared_open(mf_model_image, mf_model_image_bytes, arena, sizeof arena, &runner) != MF_OK ||
        mf_prepared_input(&runner, 0, &in) != MF_OK) {
        put("ERROR open\n");
        mfb_exit(1);
    }
    for (i = 0; i < in.bytes; ++i) {
        ((int8_t *)in.data)[i] = test_input[i];
    }
    mf_app_mark();
    if (mf_prepared_invoke(&runner) != MF_OK) {
        put("ERROR invoke\n");
        mfb_exit(1);
    }
    mf_app_mark();
    if (mf_prepared_output(&runner, 0, &out) != MF_OK) {
        put("ERROR invoke\n");
        mfb_exit(1);
    }
    put("OUT");
    for (i = 0; i < out.bytes; ++i) {
        put(" ");
        put_int(((const int8_t *)out.data)[i]);
    }
    put("\n");
    mfb_exit(0);
}
