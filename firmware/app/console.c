#include "console.h"

#include <string.h>

#include "board.h"

void mf_console_put(const char *text)
{
    mfb_write(text, strlen(text));
}

void mf_console_begin(const char *key)
{
    mf_console_put("MF ");
    mf_console_put(key);
}

void mf_console_end(void)
{
    mf_console_put("\n");
}

void mf_console_put_uint(uint32_t value)
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

void mf_console_put_int(int32_t value)
{
    if (value < 0) {
        mf_console_put("-");
        mf_console_put_uint(0u - (uint32_t)value);
    } else {
        mf_console_put_uint((uint32_t)value);
    }
}

void mf_console_put_hex(const void *data, size_t bytes)
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

void mf_console_put_double_bits(double value)
{
    uint64_t bits;
    unsigned char big_endian[8];
    size_t i;
    memcpy(&bits, &value, sizeof bits);
    for (i = 0; i < 8; i++) {
        big_endian[i] = (unsigned char)(bits >> (56u - 8u * i));
    }
    mf_console_put_hex(big_endian, sizeof big_endian);
}

void mf_console_status(const char *what, mf_status status)
{
    mf_console_begin("error");
    mf_console_put(" ");
    mf_console_put(what);
    mf_console_put(" ");
    mf_console_put(mf_status_name(status));
    mf_console_end();
}

void mf_console_model(const char *name, unsigned int model_bytes)
{
    mf_console_begin("model");
    mf_console_put(" ");
    mf_console_put(name);
    mf_console_put(" bytes=");
    mf_console_put_uint(model_bytes);
    mf_console_end();
}

mf_status mf_console_load(const unsigned char *model_data, unsigned int model_bytes, unsigned char *arena, unsigned int arena_bytes,
                          mf_model **model)
{
    mf_fault fault;
    mf_status status = mf_load(model_data, model_bytes, arena, arena_bytes, model, &fault);
    if (status != MF_OK) {
        mf_console_begin("error");
        mf_console_put(" load ");
        mf_console_put(mf_status_name(status));
        mf_console_put(" op=");
        mf_console_put_int(fault.op_index);
        mf_console_put(" tensor=");
        mf_console_put_int(fault.tensor_index);
        mf_console_put(" name=");
        mf_console_put(fault.name[0] != '\0' ? fault.name : "-");
        mf_console_put(" arena_needed=");
        mf_console_put_uint((uint32_t)fault.arena_needed);
        mf_console_end();
        return status;
    }
    mf_console_begin("arena");
    mf_console_put(" used=");
    mf_console_put_uint((uint32_t)mf_arena_used(*model));
    mf_console_put(" size=");
    mf_console_put_uint(arena_bytes);
    mf_console_end();
    return MF_OK;
}
