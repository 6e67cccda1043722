/*
 * Mutation fuzzing of the engine's loader and interpreter, meant for the
 * sanitizer build (-fsanitize=address,undefined): any out-of-bounds access,
 * undefined behaviour or crash aborts the process. clang's libFuzzer is not
 * available here, so this is a seeded mutation loop over real models: bit
 * flips, interesting bytes and words, chunk copies and truncations. Each
 * mutant is copied into a buffer of exactly its size, so ASan sees any read
 * past its end; models that still load are invoked on random inputs.
 *
 * Seeds that are prepared images (mf_prepared.h) fuzz the image reader
 * instead: most mutants get their checksum recomputed so the structural
 * checks behind it are reached; images it accepts have their inputs and
 * outputs written and read. They are not invoked: an image's records are
 * trusted once its checksum matches (the host wrote them after prepare).
 * Models that load are also written as prepared images by the host writer
 * (the kernels' prepare for flash, where sparse filters are encoded:
 * kernels/mf_sparse.h) and those images invoked, so the encoders and the
 * sparse kernels meet mutated shapes and weights (models up to 16 KB);
 * seeds with a DEPTHWISE_CONV_2D feeding a FULLY_CONNECTED alone take the
 * fused kernel (kernels/mf_depthwise_fc.h) on both paths, mutants that
 * break the pair (a second reader, other shapes or types) the two kernels.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mf_engine.h"
#include "mf_kernel.h"
#include "mf_prepare.h"
#include "mf_prepared.h"

typedef struct mf_fuzz_stats {
    uint32_t iterations;
    uint32_t loaded;  /* mutants that loaded */
    uint32_t invoked; /* ...and ran to MF_OK */
} mf_fuzz_stats;

static uint32_t fuzz_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    *state = x;
    return x;
}

static void fuzz_mutate(uint8_t *data, size_t *size, uint32_t *rng)
{
    /* 17: TensorType INT4, so int8 tensors turn into packed ones of half the bytes their shape says. */
    static const uint32_t words[] = {0u, 1u, 2u, 4u, 17u, 0x7Fu, 0x80u, 0xFFu, 0x7FFFu, 0xFFFFu, 0x7FFFFFFFu, 0x80000000u,
                                     0xFFFFFFFFu, 0xFFFFFFFEu, 0x10000u};
    const uint32_t count = 1 + fuzz_next(rng) % 4;
    uint32_t n;
    for (n = 0; n < count && *size > 0; ++n) {
        const size_t at = fuzz_next(rng) % *size;
        switch (fuzz_next(rng) % 5) {
        case 0:
            data[at] ^= (uint8_t)(1u << (fuzz_next(rng) % 8));
            break;
        case 1:
            data[at] = (uint8_t)words[fuzz_next(rng) % (sizeof words / sizeof words[0])];
            break;
        case 2:
            if (*size >= 4) {
                const uint32_t w = words[fuzz_next(rng) % (sizeof words / sizeof words[0])];
                memcpy(&data[(at / 4) * 4 < *size - 3 ? (at / 4) * 4 : *size - 4], &w, 4);
            }
            break;
        case 3: {
            const size_t from = fuzz_next(rng) % *size;
            const size_t length = 1 + fuzz_next(rng) % 16;
            if (from + length <= *size && at + length <= *size) {
                memmove(&data[at], &data[from], length);
            }
            break;
        }
        default:
            *size = at;
            break;
        }
    }
}

/* Word `index` of a little-endian byte buffer. */
static uint32_t mf_word_le(const uint8_t *bytes, size_t index)
{
    uint32_t value;
    memcpy(&value, bytes + 4u * index, sizeof value);
    return value;
}

/* Fills every input with random bytes, then runs the model. */
static mf_status fuzz_invoke(mf_model *model, uint32_t *rng)
{
    size_t i;
    for (i = 0; i < mf_input_count(model); ++i) {
        mf_tensor_info info;
        size_t k;
        mf_status status = mf_input(model, i, &info);
        if (status != MF_OK) {
            return status;
        }
        for (k = 0; k < info.bytes; ++k) {
            ((uint8_t *)info.data)[k] = (uint8_t)fuzz_next(rng);
        }
    }
    return mf_invoke(model);
}

/* Writes the prepared image of a model that loads, then opens and invokes it on random inputs. */
static void fuzz_written_image(const uint8_t *model, size_t size, uint8_t *arena, size_t arena_size, uint32_t *rng)
{
    const uint32_t choices = fuzz_next(rng) & MF_CHOICE_NARROW_DEPTHWISE_CHANNEL_MAJOR; /* either build choice */
    size_t bytes = 0;
    uint8_t *image;
    mf_prepared runner;
    size_t i;
    if (mf_prepare_image(model, size, arena, arena_size, choices, NULL, 0, &bytes, NULL) != MF_OK) {
        return;
    }
    image = malloc(bytes > 0 ? bytes : 1); /* malloc's alignment is enough for an image (8) */
    if (image != NULL && mf_prepare_image(model, size, arena, arena_size, choices, image, bytes, &bytes, NULL) == MF_OK &&
        mf_prepared_open(image, bytes, arena, arena_size, &runner) == MF_OK) {
        for (i = 0; i < mf_prepared_input_count(&runner); ++i) {
            mf_tensor_info info;
            size_t k;
            if (mf_prepared_input(&runner, i, &info) == MF_OK) {
                for (k = 0; k < info.bytes; ++k) {
                    ((uint8_t *)info.data)[k] = (uint8_t)fuzz_next(rng);
                }
            }
        }
        (void)mf_prepared_invoke(&runner);
    }
    free(image);
}

/* Opens a (mutated) prepared image; when accepted, fills every input and reads every output. */
static int fuzz_prepared(uint8_t *image, size_t size, uint8_t *arena, size_t arena_size, uint32_t *rng)
{
    mf_prepared runner;
    size_t i;
    if (size >= 4u * MF_IMAGE_HEADER_WORDS && fuzz_next(rng) % 8u != 0) {
        const uint32_t bytes = mf_word_le(image, MF_IMAGE_BYTES) <= size ? mf_word_le(image, MF_IMAGE_BYTES) : (uint32_t)size;
        const uint32_t checksum = mf_prepared_checksum(image, bytes);
        memcpy(image + 4u * MF_IMAGE_CHECKSUM, &checksum, sizeof checksum);
    }
    if (mf_prepared_open(image, size, arena, arena_size, &runner) != MF_OK) {
        return 0;
    }
    for (i = 0; i < mf_prepared_input_count(&runner) + mf_prepared_output_count(&runner); ++i) {
        mf_tensor_info info;
        const size_t inputs = mf_prepared_input_count(&runner);
        const mf_status status = i < inputs ? mf_prepared_input(&runner, i, &info) : mf_prepared_output(&runner, i - inputs, &info);
        if (status == MF_OK && info.bytes > 0) {
            ((uint8_t *)info.data)[info.bytes - 1] ^= ((const uint8_t *)info.data)[0];
        }
    }
    return 1;
}

/* Runs until `iterations` mutants or `seconds` of CPU time, whichever comes first. */
int mf_fuzz_run(const uint8_t *const *models, const size_t *sizes, int model_count, uint32_t seed,
                uint32_t iterations, double seconds, size_t arena_size, mf_fuzz_stats *stats)
{
    const clock_t stop = clock() + (clock_t)(seconds * CLOCKS_PER_SEC);
    uint32_t rng = seed != 0 ? seed : 1u;
    uint8_t *arena = malloc(arena_size);
    memset(stats, 0, sizeof *stats);
    if (arena == NULL || model_count <= 0) {
        free(arena);
        return -1;
    }
    while (stats->iterations < iterations && clock() < stop) {
        const int pick = stats->iterations < (uint32_t)model_count ? (int)stats->iterations
                                                                   : (int)(fuzz_next(&rng) % (uint32_t)model_count);
        size_t size = sizes[pick];
        uint8_t *scratch = malloc(size > 0 ? size : 1);
        uint8_t *mutant;
        mf_model *model = NULL;
        if (scratch == NULL) {
            break;
        }
        memcpy(scratch, models[pick], size);
        if (stats->iterations >= (uint32_t)model_count) { /* the first round runs the seeds as they are */
            fuzz_mutate(scratch, &size, &rng);
        }
        mutant = malloc(size > 0 ? size : 1); /* exactly `size` bytes: ASan flags any read past the end */
        if (mutant == NULL) {
            free(scratch);
            break;
        }
        memcpy(mutant, scratch, size);
        free(scratch);
        if (size >= 4 && mf_word_le(mutant, MF_IMAGE_MAGIC_WORD) == MF_IMAGE_MAGIC) {
            stats->loaded += (uint32_t)fuzz_prepared(mutant, size, arena, arena_size, &rng);
        } else if (mf_load(mutant, size, arena, arena_size, &model, NULL) == MF_OK) {
            stats->loaded++;
            if (fuzz_invoke(model, &rng) == MF_OK) {
                stats->invoked++;
            }
            if (size <= 16384u) { /* small models only: an image of person_detect per mutant would halve the rate */
                fuzz_written_image(mutant, size, arena, arena_size, &rng);
            }
        }
        free(mutant);
        stats->iterations++;
    }
    free(arena);
    return 0;
}
