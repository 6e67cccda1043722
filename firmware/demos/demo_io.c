#include "demo_io.h"

#include <string.h>

#include "board.h"

void mfdemo_put(const char *text)
{
    mfb_write(text, strlen(text));
}

void mfdemo_put_uint(uint32_t value)
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

void mfdemo_put_int(int32_t value)
{
    if (value < 0) {
        mfdemo_put("-");
        mfdemo_put_uint(0u - (uint32_t)value);
    } else {
        mfdemo_put_uint((uint32_t)value);
    }
}

void mfdemo_put_hex(const void *data, size_t bytes)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *byte = (const unsigned char *)data;
    size_t i;
    for (i = 0; i < bytes; i++) {
        char pair[2];
        pair[0] = hex[byte[i] >> 4];
        pair[1] = hex[byte[i] & 0xFu];
        mfb_write(pair, 2);
    }
}

void mfdemo_put_double_bits(double value)
{
    uint64_t bits;
    unsigned char big_endian[8];
    size_t i;
    memcpy(&bits, &value, sizeof bits);
    for (i = 0; i < 8; i++) {
        big_endian[i] = (unsigned char)(bits >> (56u - 8u * i));
    }
    mfdemo_put_hex(big_endian, sizeof big_endian);
}

void mfdemo_put_status(const char *what, mf_status status)
{
    mfdemo_put("MFD error ");
    mfdemo_put(what);
    mfdemo_put(" ");
    mfdemo_put(mf_status_name(status));
    mfdemo_put("\n");
}

mf_status mfdemo_load(const char *name, const unsigned char *model_data, unsigned int model_bytes, unsigned char *arena,
                   unsigned int arena_bytes, mf_model **model)
{
    mf_fault fault;
    mf_status status = mf_load(model_data, model_bytes, arena, arena_bytes, model, &fault);
    if (status != MF_OK) {
        mfdemo_put_status("load", status);
        return status;
    }
    mfdemo_put("MFD model ");
    mfdemo_put(name);
    mfdemo_put(" bytes=");
    mfdemo_put_uint(model_bytes);
    mfdemo_put(" arena=");
    mfdemo_put_uint((uint32_t)mf_arena_used(*model));
    mfdemo_put("\n");
    return MF_OK;
}
