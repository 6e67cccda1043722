/*
 * FlexBuffer map reader (format: flatbuffers' flexbuffers.h). The root is at
 * the end: last byte its width, the byte before its packed type, then the
 * root value. A map's elements are preceded by its keys vector offset, the
 * keys' width and its size, and followed by one packed type byte per element.
 * Offsets count backwards from where they are stored.
 */
#include <string.h>

#include "mf_flexbuffer.h"

enum {
    FLEX_NULL = 0, FLEX_INT = 1, FLEX_UINT = 2, FLEX_INDIRECT_INT = 6, FLEX_INDIRECT_UINT = 7, FLEX_MAP = 9,
    FLEX_BOOL = 26
};

typedef struct flex_buf {
    const uint8_t *data;
    size_t size;
} flex_buf;

/* The unsigned integer of `width` (1, 2, 4 or 8) bytes at `pos`; 0 when out of bounds. */
static int flex_uint(const flex_buf *b, size_t pos, size_t width, uint64_t *value)
{
    size_t i;
    if (pos > b->size || width > b->size - pos) {
        return 0;
    }
    *value = 0;
    for (i = 0; i < width; ++i) {
        *value |= (uint64_t)b->data[pos + i] << (8u * i);
    }
    return 1;
}

/* The position an offset stored at `pos` (of `width` bytes) points back to. */
static int flex_target(const flex_buf *b, size_t pos, size_t width, size_t *target)
{
    uint64_t offset;
    if (!flex_uint(b, pos, width, &offset) || offset > pos) {
        return 0;
    }
    *target = pos - (size_t)offset;
    return 1;
}

/* The signed or unsigned integer of `width` bytes at `pos`, kept only when it fits int32. */
static int flex_int32(const flex_buf *b, size_t pos, size_t width, int is_signed, int32_t *value)
{
    uint64_t raw;
    int64_t wide;
    if (!flex_uint(b, pos, width, &raw)) {
        return 0;
    }
    if (is_signed && width < 8u && (raw >> (8u * width - 1u)) != 0) {
        raw |= ~(uint64_t)0 << (8u * width); /* sign-extend */
    }
    if (!is_signed && raw > (uint64_t)INT32_MAX) {
        return 0;
    }
    memcpy(&wide, &raw, sizeof wide);
    if (wide < INT32_MIN || wide > INT32_MAX) {
        return 0;
    }
    *value = (int32_t)wide;
    return 1;
}

/* 1 when the NUL-terminated key at `pos` equals `key`. */
static int flex_key_equals(const flex_buf *b, size_t pos, const char *key)
{
    const size_t length = strlen(key);
    return pos < b->size && length < b->size - pos && memcmp(b->data + pos, key, length) == 0 &&
           b->data[pos + length] == '\0';
}

mf_status mf_flex_map_int(const uint8_t *data, size_t size, const char *key, int32_t *value, int *found)
{
    flex_buf b;
    size_t root_width, width, map, keys, keys_width, i;
    uint64_t count, raw_keys_width;
    uint8_t root_type;
    b.data = data;
    b.size = size;
    *found = 0;
    if (size == 0) {
        return MF_OK;
    }
    if (data == NULL || size < 3u) {
        return MF_ERR_BAD_MODEL;
    }
    root_width = data[size - 1u];
    root_type = data[size - 2u];
    if ((root_width != 1u && root_width != 2u && root_width != 4u && root_width != 8u) || size - 2u < root_width ||
        (root_type >> 2) != FLEX_MAP) {
        return MF_ERR_BAD_MODEL;
    }
    width = (size_t)1 << (root_type & 3u); /* the map's element width */
    if (!flex_target(&b, size - 2u - root_width, root_width, &map) || map < 3u * width ||
        !flex_uint(&b, map - width, width, &count) || !flex_uint(&b, map - 2u * width, width, &raw_keys_width) ||
        !flex_target(&b, map - 3u * width, width, &keys)) {
        return MF_ERR_BAD_MODEL;
    }
    keys_width = (size_t)raw_keys_width;
    if ((keys_width != 1u && keys_width != 2u && keys_width != 4u && keys_width != 8u) ||
        count > (b.size - map) / (width + 1u)) {
        return MF_ERR_BAD_MODEL;
    }
    for (i = 0; i < (size_t)count; ++i) {
        size_t key_pos, value_pos = map + i * width;
        uint8_t packed;
        int type;
        if (keys > b.size || i >= (b.size - keys) / keys_width ||
            !flex_target(&b, keys + i * keys_width, keys_width, &key_pos)) {
            return MF_ERR_BAD_MODEL;
        }
        if (!flex_key_equals(&b, key_pos, key)) {
            continue;
        }
        packed = b.data[map + (size_t)count * width + i];
        type = packed >> 2;
        switch (type) {
        case FLEX_INT:
        case FLEX_UINT:
        case FLEX_BOOL:
            if (!flex_int32(&b, value_pos, width, type == FLEX_INT, value)) {
                return MF_ERR_BAD_MODEL;
            }
            break;
        case FLEX_INDIRECT_INT:
        case FLEX_INDIRECT_UINT:
            if (!flex_target(&b, value_pos, width, &value_pos) ||
                !flex_int32(&b, value_pos, (size_t)1 << (packed & 3u), type == FLEX_INDIRECT_INT, value)) {
                return MF_ERR_BAD_MODEL;
            }
            break;
        default:
            return MF_ERR_BAD_MODEL;
        }
        *found = 1;
        return MF_OK;
    }
    return MF_OK;
}
