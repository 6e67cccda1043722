/* Bounds-checked flatbuffer reading; see mf_flatbuffer.h. Little-endian by construction. */
#include "mf_flatbuffer.h"

#include <string.h>

#include "mf_kernel.h"

uint32_t mf_fb_u32(const mf_fb *fb, size_t pos)
{
    const uint8_t *p = fb->base + pos;
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

int32_t mf_fb_i32(const mf_fb *fb, size_t pos) { return (int32_t)mf_fb_u32(fb, pos); }

static uint16_t mf_fb_u16(const mf_fb *fb, size_t pos)
{
    return (uint16_t)(fb->base[pos] | (fb->base[pos + 1] << 8));
}

int64_t mf_fb_i64(const mf_fb *fb, size_t pos)
{
    return (int64_t)((uint64_t)mf_fb_u32(fb, pos) | ((uint64_t)mf_fb_u32(fb, pos + 4) << 32));
}

float mf_fb_f32(const mf_fb *fb, size_t pos)
{
    const uint32_t bits = mf_fb_u32(fb, pos);
    float value;
    memcpy(&value, &bits, sizeof value);
    return value;
}

mf_status mf_fb_table_at(const mf_fb *fb, size_t pos, size_t *table)
{
    size_t t;
    int64_t vtable;
    uint16_t vtable_size;
    uint16_t table_size;
    if (pos > fb->size || fb->size - pos < 4) {
        return MF_ERR_BAD_MODEL;
    }
    t = pos + mf_fb_u32(fb, pos);
    if (t < pos || t > fb->size || fb->size - t < 4) {
        return MF_ERR_BAD_MODEL;
    }
    vtable = (int64_t)t - (int64_t)mf_fb_i32(fb, t);
    if (vtable < 0 || (uint64_t)vtable > fb->size || fb->size - (size_t)vtable < 4) {
        return MF_ERR_BAD_MODEL;
    }
    vtable_size = mf_fb_u16(fb, (size_t)vtable);
    table_size = mf_fb_u16(fb, (size_t)vtable + 2);
    if (vtable_size < 4 || (vtable_size & 1u) != 0 || fb->size - (size_t)vtable < vtable_size || table_size < 4 ||
        fb->size - t < table_size) {
        return MF_ERR_BAD_MODEL;
    }
    *table = t;
    return MF_OK;
}

mf_status mf_fb_field(const mf_fb *fb, size_t table, int field, size_t width, size_t *pos)
{
    const size_t vtable = (size_t)((int64_t)table - (int64_t)mf_fb_i32(fb, table));
    const size_t entry = 4 + 2 * (size_t)field;
    uint16_t offset;
    *pos = 0;
    if (entry + 2 > mf_fb_u16(fb, vtable)) {
        return MF_OK;
    }
    offset = mf_fb_u16(fb, vtable + entry);
    if (offset == 0) {
        return MF_OK;
    }
    if ((size_t)offset + width > mf_fb_u16(fb, vtable + 2)) {
        return MF_ERR_BAD_MODEL;
    }
    *pos = table + offset;
    return MF_OK;
}

mf_status mf_fb_table_field(const mf_fb *fb, size_t table, int field, size_t *sub)
{
    size_t pos;
    mf_status status = mf_fb_field(fb, table, field, 4, &pos);
    *sub = 0;
    if (status != MF_OK || pos == 0) {
        return status;
    }
    return mf_fb_table_at(fb, pos, sub);
}

mf_status mf_fb_vector_field(const mf_fb *fb, size_t table, int field, size_t elem_size, mf_fb_vector *vec)
{
    size_t pos;
    size_t v;
    uint32_t count;
    mf_status status = mf_fb_field(fb, table, field, 4, &pos);
    vec->data = 0;
    vec->count = 0;
    if (status != MF_OK || pos == 0) {
        return status;
    }
    v = pos + mf_fb_u32(fb, pos);
    if (v < pos || v > fb->size || fb->size - v < 4) {
        return MF_ERR_BAD_MODEL;
    }
    count = mf_fb_u32(fb, v);
    if ((fb->size - v - 4) / elem_size < count || ((uintptr_t)(fb->base + v + 4) % elem_size) != 0) {
        return MF_ERR_BAD_MODEL;
    }
    vec->data = v + 4;
    vec->count = count;
    return MF_OK;
}

mf_status mf_fb_vector_table(const mf_fb *fb, const mf_fb_vector *vec, uint32_t index, size_t *table)
{
    if (index >= vec->count) {
        return MF_ERR_BAD_MODEL;
    }
    return mf_fb_table_at(fb, vec->data + 4 * (size_t)index, table);
}

mf_status mf_fb_read_u8(const mf_fb *fb, size_t table, int field, uint8_t default_value, uint8_t *value)
{
    size_t pos;
    mf_status status = mf_fb_field(fb, table, field, 1, &pos);
    *value = pos != 0 ? fb->base[pos] : default_value;
    return status;
}

mf_status mf_fb_read_i32(const mf_fb *fb, size_t table, int field, int32_t default_value, int32_t *value)
{
    size_t pos;
    mf_status status = mf_fb_field(fb, table, field, 4, &pos);
    *value = pos != 0 ? mf_fb_i32(fb, pos) : default_value;
    return status;
}

mf_status mf_fb_read_u64(const mf_fb *fb, size_t table, int field, uint64_t *value)
{
    size_t pos;
    mf_status status = mf_fb_field(fb, table, field, 8, &pos);
    *value = pos != 0 ? (uint64_t)mf_fb_i64(fb, pos) : 0u;
    return status;
}

/* Options accessors for kernels: an absent or malformed field reads as its default. */
static const mf_fb *mf_options_fb(const mf_options *options, mf_fb *fb)
{
    fb->base = options->base;
    fb->size = options->size;
    return fb;
}

int32_t mf_option_i32(const mf_options *options, int field, int32_t default_value)
{
    mf_fb fb;
    int32_t value = default_value;
    if (options->table != 0 && mf_fb_read_i32(mf_options_fb(options, &fb), options->table, field, default_value, &value) != MF_OK) {
        value = default_value;
    }
    return value;
}

int32_t mf_option_u8(const mf_options *options, int field, int32_t default_value)
{
    mf_fb fb;
    uint8_t value = (uint8_t)default_value;
    if (options->table == 0 ||
        mf_fb_read_u8(mf_options_fb(options, &fb), options->table, field, (uint8_t)default_value, &value) != MF_OK) {
        return default_value;
    }
    return (int32_t)(int8_t)value;
}

float mf_option_f32(const mf_options *options, int field, float default_value)
{
    mf_fb fb;
    size_t pos = 0;
    if (options->table == 0 || mf_fb_field(mf_options_fb(options, &fb), options->table, field, 4, &pos) != MF_OK || pos == 0) {
        return default_value;
    }
    return mf_fb_f32(&fb, pos);
}
