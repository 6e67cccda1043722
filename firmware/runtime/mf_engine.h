/*
 * mcuforge engine: runs an int8 TFLite flatbuffer (the C array a TFLM project
 * takes) with no heap and no global state. The caller owns one arena; the
 * model is read in place, weights are never copied.
 *
 *   mf_model *m; mf_fault f;
 *   if (mf_load(g_model, g_model_len, arena, sizeof arena, &m, &f) != MF_OK) ...
 *   mf_input(m, 0, &in);  fill in.data
 *   mf_invoke(m);
 *   mf_output(m, 0, &out); read out.data
 */
#ifndef MF_ENGINE_H
#define MF_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Every API call returns one of these. Values are stable (the Python binding
 * reads names through mf_status_name, never duplicates them). */
typedef enum mf_status {
    MF_OK = 0,
    MF_ERR_BAD_ARGUMENT = 1,      /* NULL pointer, index out of range, misaligned model */
    MF_ERR_BAD_MODEL = 2,         /* not a valid TFLite flatbuffer, or inconsistent graph */
    MF_ERR_UNSUPPORTED_OP = 3,    /* op has no kernel here: mf_fault.name names it */
    MF_ERR_UNSUPPORTED_TYPE = 4,  /* tensor type a kernel cannot run: mf_fault.name names it */
    MF_ERR_UNSUPPORTED_PARAM = 5, /* op parameters outside what the kernel implements */
    MF_ERR_ARENA_TOO_SMALL = 6,   /* mf_fault.arena_needed says how much is needed, when known */
    MF_STATUS_COUNT = 7
} mf_status;

/* Tensor element types, numbered as TFLite's schema TensorType. */
typedef enum mf_dtype {
    MF_FLOAT32 = 0,
    MF_INT32 = 2,
    MF_UINT8 = 3,
    MF_INT64 = 4,
    MF_BOOL = 6,
    MF_INT16 = 7,
    MF_INT8 = 9,
    MF_INT4 = 17 /* two values a byte, low nibble first: constant weights only */
} mf_dtype;

/* The loaded model; it lives at the start of the caller's arena. */
typedef struct mf_model mf_model;

/* Where loading failed. Every field is set by mf_load on every path. */
typedef struct mf_fault {
    int32_t op_index;     /* operator at fault, -1 when none */
    int32_t tensor_index; /* tensor at fault, -1 when none */
    const char *name;     /* unsupported op or type name, "" otherwise */
    size_t arena_needed;  /* bytes needed on MF_ERR_ARENA_TOO_SMALL, 0 when unknown */
} mf_fault;

/* A graph input or output. dims point into the model (read-only). */
typedef struct mf_tensor_info {
    void *data;
    const int32_t *dims;
    int32_t rank;
    mf_dtype type;
    float scale;        /* 0 when the tensor is not quantized */
    int32_t zero_point;
    size_t bytes;
} mf_tensor_info;

/* Validates the model, plans memory and prepares every op. The model bytes
 * must stay alive and unchanged while the model is used, and start on an
 * 8-byte boundary (TFLM C arrays are 16-byte aligned). `fault` may be NULL. */
mf_status mf_load(const uint8_t *model_data, size_t model_size, void *arena, size_t arena_size,
                  mf_model **model, mf_fault *fault);

/* Runs every op once, in graph order. Input tensors are consumed: the planner
 * lets later activations reuse their bytes (as TFLM's does), so write the
 * inputs again before the next call. */
mf_status mf_invoke(mf_model *model);

size_t mf_input_count(const mf_model *model);
size_t mf_output_count(const mf_model *model);
mf_status mf_input(const mf_model *model, size_t index, mf_tensor_info *info);
mf_status mf_output(const mf_model *model, size_t index, mf_tensor_info *info);

/* Arena bytes this model needs (engine state, tables and activations). */
size_t mf_arena_used(const mf_model *model);

const char *mf_status_name(mf_status status);
/* TFLite's name for a builtin operator code ("CONV_2D"), "UNKNOWN" if out of range. */
const char *mf_op_name(int32_t builtin_code);
/* TFLite's name for a TensorType value ("INT8"), "UNKNOWN" if out of range. */
const char *mf_type_name(int32_t type);

#ifdef __cplusplus
}
#endif

#endif /* MF_ENGINE_H */
