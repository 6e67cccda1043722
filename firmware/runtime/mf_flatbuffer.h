/*
 * Bounds-checked reading of a flatbuffer in place (internal to the engine).
 * Positions are byte offsets from the buffer start; 0 means "absent". Every
 * read checks the table, vtable, offset or vector against the buffer size, so
 * any byte sequence yields a value or MF_ERR_BAD_MODEL, never a wild read.
 */
#ifndef MF_FLATBUFFER_H
#define MF_FLATBUFFER_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

typedef struct mf_fb {
    const uint8_t *base;
    size_t size;
} mf_fb;

/* A vector's element data position and element count. */
typedef struct mf_fb_vector {
    size_t data;
    uint32_t count;
} mf_fb_vector;

uint32_t mf_fb_u32(const mf_fb *fb, size_t pos);
int32_t mf_fb_i32(const mf_fb *fb, size_t pos);
int64_t mf_fb_i64(const mf_fb *fb, size_t pos);
float mf_fb_f32(const mf_fb *fb, size_t pos);

/* Follows the uoffset at `pos` to a table and checks its vtable. */
mf_status mf_fb_table_at(const mf_fb *fb, size_t pos, size_t *table);
/* Position of a scalar field of `width` bytes, 0 when absent. */
mf_status mf_fb_field(const mf_fb *fb, size_t table, int field, size_t width, size_t *pos);
/* A sub-table field; *sub = 0 when absent. */
mf_status mf_fb_table_field(const mf_fb *fb, size_t table, int field, size_t *sub);
/* A vector field of elements `elem_size` bytes wide, aligned to `elem_size`
 * in memory; an absent vector is {0, 0}. */
mf_status mf_fb_vector_field(const mf_fb *fb, size_t table, int field, size_t elem_size, mf_fb_vector *vec);
/* Element `index` of a vector of tables. */
mf_status mf_fb_vector_table(const mf_fb *fb, const mf_fb_vector *vec, uint32_t index, size_t *table);

/* Scalar field readers with the schema default when absent. */
mf_status mf_fb_read_u8(const mf_fb *fb, size_t table, int field, uint8_t default_value, uint8_t *value);
mf_status mf_fb_read_i32(const mf_fb *fb, size_t table, int field, int32_t default_value, int32_t *value);
mf_status mf_fb_read_u64(const mf_fb *fb, size_t table, int field, uint64_t *value);

#endif /* MF_FLATBUFFER_H */
