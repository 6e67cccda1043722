/* Sparse filter encodings of prepared images and the loops that read them (mf_sparse.h). */
#include <string.h>

#include "mf_int4.h"
#include "mf_sparse.h"

/* Output channels and weights per channel of the filter ([C][K]). */
static void sparse_shape(const mf_op *op, int32_t *channels, int32_t *per_channel)
{
    *channels = op->inputs[1].dims[0];
    *per_channel = *channels > 0 ? mf_tensor_flat_size(&op->inputs[1]) / *channels : 0;
}

static size_t sparse_bitmap_row(int32_t per_channel) { return ((size_t)per_channel + 7u) / 8u; }

/* Weight `index` of the filter ([C][K] flat), int8 or INT4 (head->weights before the plan). */
static int32_t sparse_weight(const mf_op *op, int int4, size_t index)
{
    const int8_t *w = (const int8_t *)op->inputs[1].data;
    return int4 ? mf_int4_at(w, index) : (int32_t)w[index];
}

size_t mf_sparse_plan(const mf_op *op, mf_affine_kind kind, mf_affine_data *head)
{
    const mf_tensor *filter = &op->inputs[1];
    const int8_t *w = (const int8_t *)filter->data;
    int32_t channels;
    int32_t k;
    size_t nonzeros = 0;
    size_t dense;
    size_t row;
    size_t two_four;
    size_t bitmap;
    size_t i;
    int gathered; /* eval reads each output's K inputs as one row (mf_sparse.h) */
    int is_two_four;
    sparse_shape(op, &channels, &k);
    gathered = kind == MF_AFFINE_FULLY_CONNECTED ||
               (kind == MF_AFFINE_CONV &&
                (filter->dims[1] * filter->dims[2] == 1 || (filter->dims[3] == op->inputs[0].dims[3] &&
                                                            op->inputs[0].zero_point >= INT8_MIN &&
                                                            op->inputs[0].zero_point <= INT8_MAX))); /* the padding's value */
    is_two_four = k % 4 == 0 && (gathered || filter->dims[filter->rank - 1] % 4 == 0);
    const int int4 = head->weights == MF_WEIGHTS_INT4;
    if ((head->weights != MF_WEIGHTS_INT8 && !int4) || w == NULL || filter->zero_point != 0 || channels < 1 || k < 1 ||
        (int4 && !(kind == MF_AFFINE_CONV && gathered))) { /* other INT4 filters stay packed */
        return 0;
    }
    dense = (size_t)channels * (size_t)k;
    for (i = 0; i < dense; i += 4) { /* groups of four along each channel's K weights when K % 4 == 0 */
        size_t group_nonzeros = 0;
        size_t j;
        for (j = i; j < i + 4 && j < dense; ++j) {
            group_nonzeros += sparse_weight(op, int4, j) != 0;
        }
        nonzeros += group_nonzeros;
        is_two_four = is_two_four && group_nonzeros <= 2;
    }
    row = sparse_bitmap_row(k);
    if (int4) { /* INT4 2:4: a values byte and a positions nibble per group, 3/4 of the packed bytes */
        if (!is_two_four) {
            return 0;
        }
        head->weights = MF_WEIGHTS_SPARSE_2_4_INT4;
        head->bias_folded = 1;
        return 4u * (size_t)channels + ((size_t)channels * ((size_t)k / 4u + row) + 3u) / 4u * 4u;
    }
    two_four = (size_t)channels * ((size_t)k / 2u + row);
    bitmap = (size_t)channels * (4u + row) + nonzeros;
    if (kind == MF_AFFINE_DEPTHWISE) { /* 2:4 only, expanded at eval for the dense loops */
        if (!is_two_four) {
            return 0;
        }
        head->weights = MF_WEIGHTS_SPARSE_2_4;
        return (two_four + 3u) / 4u * 4u;
    }
    if (is_two_four && two_four < dense) {
        head->weights = MF_WEIGHTS_SPARSE_2_4;
        head->bias_folded = (int16_t)gathered;
        return (head->bias_folded ? 4u * (size_t)channels : 0u) + (two_four + 3u) / 4u * 4u;
    }
    if (2u * bitmap <= dense) { /* bit walking is slower than dense loops (bench/sparsity.py): only for half the bytes */
        head->weights = MF_WEIGHTS_BITMAP;
        return (bitmap + 3u) / 4u * 4u;
    }
    if (kind == MF_AFFINE_FULLY_CONNECTED) { /* dense: the folded biases alone, so eval adds no offset per MAC */
        head->bias_folded = 1;
        return 4u * (size_t)channels;
    }
    return 0;
}

size_t mf_sparse_windows_bytes(const mf_op *op, const mf_affine_data *head)
{
    const mf_tensor *filter = &op->inputs[1];
    mf_affine_data plan = *head;
    int32_t channels;
    int32_t k;
    sparse_shape(op, &channels, &k);
    if (!mf_op_data_in_flash(op) || filter->dims[1] * filter->dims[2] == 1 || mf_sparse_plan(op, MF_AFFINE_CONV, &plan) == 0 ||
        (plan.weights != MF_WEIGHTS_SPARSE_2_4 && plan.weights != MF_WEIGHTS_SPARSE_2_4_INT4) || !plan.bias_folded) {
        return 0;
    }
    return 4u * (size_t)k;
}

/* Scratch bytes of a depthwise filter of k weights expanded from 2:4: rounded up to 4 so that the dense loop's
 * own scratch after it stays 4-aligned. */
static size_t sparse_expanded_filter_bytes(int32_t k)
{
    return ((size_t)k + 3u) & ~(size_t)3u;
}

size_t mf_sparse_dense_filter_bytes(const mf_op *op, mf_affine_kind kind)
{
    mf_affine_data plan;
    memset(&plan, 0, sizeof plan);
    plan.weights = op->inputs[1].type == MF_INT4 ? MF_WEIGHTS_INT4 : MF_WEIGHTS_INT8;
    if (kind != MF_AFFINE_DEPTHWISE || !mf_op_data_in_flash(op) || mf_sparse_plan(op, kind, &plan) == 0) {
        return 0;
    }
    return sparse_expanded_filter_bytes(mf_tensor_flat_size(&op->inputs[1]));
}

/* Folded biases: bias + input offset x the channel's weight sum, in wrapping int32 as the accumulator. */
static uint8_t *sparse_fold_biases(const mf_op *op, const mf_affine_data *head, uint8_t *out)
{
    const int int4 = op->inputs[1].type == MF_INT4;
    const int32_t *bias = op->input_count == 3 ? (const int32_t *)op->inputs[2].data : NULL;
    int32_t channels;
    int32_t k;
    int32_t c;
    sparse_shape(op, &channels, &k);
    for (c = 0; c < channels; ++c) {
        uint32_t sum = 0;
        uint32_t folded;
        int32_t i;
        for (i = 0; i < k; ++i) {
            sum += (uint32_t)sparse_weight(op, int4, (size_t)c * k + (size_t)i);
        }
        folded = (bias != NULL ? (uint32_t)bias[c] : 0u) + (uint32_t)head->input_offset * sum;
        memcpy(out + 4u * (size_t)c, &folded, sizeof folded);
    }
    return out + 4u * (size_t)channels;
}

void mf_sparse_encode(const mf_op *op, const mf_affine_data *head, uint8_t *encoded)
{
    const int8_t *w = (const int8_t *)op->inputs[1].data;
    const int int4 = head->weights == MF_WEIGHTS_SPARSE_2_4_INT4;
    int32_t channels;
    int32_t k;
    int32_t c;
    size_t row;
    uint8_t *out = head->bias_folded ? sparse_fold_biases(op, head, encoded) : encoded;
    sparse_shape(op, &channels, &k);
    row = sparse_bitmap_row(k);
    if (head->weights == MF_WEIGHTS_INT8) {
        return; /* dense fully connected: the weights stay the model's tensor */
    }
    if (head->weights == MF_WEIGHTS_SPARSE_2_4 || int4) {
        const size_t values_per_channel = (size_t)(int4 ? k / 4 : k / 2); /* bytes */
        int8_t *values = (int8_t *)out;
        uint8_t *positions = out + (size_t)channels * values_per_channel;
        for (c = 0; c < channels; ++c) {
            int32_t g;
            for (g = 0; g < k / 4; ++g) {
                int32_t group[4];
                uint8_t slots[2];
                int32_t spare = 2; /* zero weights still to store where the group has fewer than two nonzeros */
                int32_t found = 0;
                int32_t j;
                for (j = 0; j < 4; ++j) {
                    group[j] = sparse_weight(op, op->inputs[1].type == MF_INT4, (size_t)c * k + 4u * (size_t)g + (size_t)j);
                    spare -= group[j] != 0; /* at most two: mf_sparse_plan checked */
                }
                for (j = 0; j < 4; ++j) { /* in order: the first position below the second */
                    if (group[j] == 0) {
                        if (spare == 0) {
                            continue;
                        }
                        --spare;
                    }
                    slots[found++] = (uint8_t)j;
                }
                if (int4) { /* the group's byte: first value in the low nibble */
                    values[(size_t)c * values_per_channel + (size_t)g] =
                        (int8_t)(uint8_t)(((uint32_t)group[slots[0]] & 0xFu) | ((uint32_t)group[slots[1]] & 0xFu) << 4);
                } else if (head->bias_folded && (g | 1) < k / 4) { /* a whole pair of groups, interleaved */
                    values[(size_t)c * values_per_channel + 4u * (size_t)(g / 2) + (size_t)(g % 2)] = (int8_t)group[slots[0]];
                    values[(size_t)c * values_per_channel + 4u * (size_t)(g / 2) + 2u + (size_t)(g % 2)] = (int8_t)group[slots[1]];
                } else {
                    values[(size_t)c * values_per_channel + 2u * (size_t)g] = (int8_t)group[slots[0]];
                    values[(size_t)c * values_per_channel + 2u * (size_t)g + 1u] = (int8_t)group[slots[1]];
                }
                positions[(size_t)c * row + (size_t)g / 2u] |= (uint8_t)((slots[0] | slots[1] << 2) << (4 * (g % 2)));
            }
        }
    } else {
        uint8_t *bitmap = out + 4u * (size_t)channels;
        int8_t *values = (int8_t *)(bitmap + (size_t)channels * row);
        uint32_t count = 0;
        for (c = 0; c < channels; ++c) {
            int32_t i;
            memcpy(out + 4u * (size_t)c, &count, sizeof count);
            for (i = 0; i < k; ++i) {
                const int8_t weight = w[(size_t)c * k + i];
                if (weight != 0) {
                    bitmap[(size_t)c * row + (size_t)i / 8u] |= (uint8_t)(1u << (i % 8));
                    values[count++] = weight;
                }
            }
        }
    }
}

/* The encoded weights after the folded biases. */
static const uint8_t *sparse_weights(const mf_op *op, const mf_affine_data *d)
{
    return (const uint8_t *)d + d->weights_at + (d->bias_folded ? 4u * (size_t)op->inputs[1].dims[0] : 0u);
}

mf_sparse_cursor mf_sparse_channel(const mf_op *op, const mf_affine_data *d, int32_t c)
{
    const uint8_t *encoded = sparse_weights(op, d);
    mf_sparse_cursor cursor;
    int32_t channels;
    int32_t k;
    size_t row;
    sparse_shape(op, &channels, &k);
    row = sparse_bitmap_row(k);
    cursor.k = 0;
    if (d->weights == MF_WEIGHTS_SPARSE_2_4) {
        cursor.values = (const int8_t *)encoded + (size_t)c * (size_t)(k / 2);
        cursor.bits = encoded + (size_t)channels * (size_t)(k / 2) + (size_t)c * row;
    } else {
        const uint32_t first = ((const uint32_t *)(const void *)encoded)[c];
        cursor.bits = encoded + 4u * (size_t)channels + (size_t)c * row;
        cursor.values = (const int8_t *)encoded + 4u * (size_t)channels + (size_t)channels * row + first;
    }
    return cursor;
}

int32_t mf_bitmap_tap(const mf_affine_data *d, mf_sparse_cursor *cursor, const int8_t *x, int32_t n, int32_t acc)
{
    const int32_t input_offset = d->input_offset;
    const int32_t end = cursor->k + n;
    const int8_t *v = cursor->values;
    uint32_t sum = (uint32_t)acc;
    int32_t k = cursor->k;
    while (k < end) { /* a byte of the bitmap at a time, only its set bits visited */
        const int32_t span = 8 - k % 8 < end - k ? 8 - k % 8 : end - k;
        uint32_t bits = ((uint32_t)cursor->bits[k / 8] >> (k % 8)) & ((1u << span) - 1u);
        const int8_t *window = x != NULL ? x + (k - cursor->k) : NULL;
        while (bits != 0) {
            if (window != NULL) {
                sum += (uint32_t)(*v * (window[__builtin_ctz(bits)] + input_offset));
            }
            ++v;
            bits &= bits - 1u;
        }
        k += span;
    }
    cursor->values = v;
    cursor->k = end;
    return (int32_t)sum;
}

/* Two pixels, all channels: each positions byte (two groups) is decoded once for both. */
static void sparse24_pair(const mf_op *op, const mf_affine_data *d, const mf_requant *requant, const int8_t *x0,
                          const int8_t *x1, int32_t count, int8_t *out)
{
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const int8_t *v = (const int8_t *)sparse_weights(op, d);
    int32_t channels;
    int32_t k;
    int32_t c;
    const uint8_t *p;
    sparse_shape(op, &channels, &k);
    p = (const uint8_t *)v + (size_t)channels * (size_t)(k / 2);
    for (c = 0; c < channels; ++c) {
        const uint8_t *end = p + k / 8;
        const int8_t *a = x0, *b = x1;
        uint32_t acc0 = (uint32_t)folded[c], acc1 = acc0;
        for (; p < end; ++p, v += 4, a += 8, b += 8) { /* two groups */
            const uint32_t bits = *p;
            const uint32_t i0 = bits & 3u, i1 = bits >> 2 & 3u, i2 = 4u + (bits >> 4 & 3u), i3 = 4u + (bits >> 6);
            const int32_t w0 = v[0], w1 = v[2], w2 = v[1], w3 = v[3]; /* interleaved (mf_sparse.h) */
            acc0 += (uint32_t)(w0 * a[i0] + w1 * a[i1] + w2 * a[i2] + w3 * a[i3]);
            acc1 += (uint32_t)(w0 * b[i0] + w1 * b[i1] + w2 * b[i2] + w3 * b[i3]);
        }
        if (k % 8 != 0) { /* a last lone group */
            const uint32_t bits = *p++;
            const int32_t w0 = v[0], w1 = v[1];
            v += 2;
            acc0 += (uint32_t)(w0 * a[bits & 3u] + w1 * a[bits >> 2 & 3u]);
            acc1 += (uint32_t)(w0 * b[bits & 3u] + w1 * b[bits >> 2 & 3u]);
        }
        out[c] = mf_affine_output(d, requant[c * d->channel_step], (int32_t)acc0);
        if (count == 2) {
            out[channels + c] = mf_affine_output(d, requant[c * d->channel_step], (int32_t)acc1);
        }
    }
}

/* A 4-bit value (a nibble at bit `shift` of a values byte), sign-extended. */
static int32_t sparse24_nibble(uint32_t byte, uint32_t shift) { return (int32_t)((byte >> shift & 0xFu) ^ 8u) - 8; }

/* sparse24_pair for INT4 2:4 filters: a values byte per group (first value in its low nibble). */
static void sparse24_int4_pair(const mf_op *op, const mf_affine_data *d, const mf_requant *requant, const int8_t *x0,
                               const int8_t *x1, int32_t count, int8_t *out)
{
    const int32_t *folded = (const int32_t *)(const void *)((const uint8_t *)d + d->weights_at);
    const uint8_t *v = sparse_weights(op, d);
    int32_t channels;
    int32_t k;
    int32_t c;
    const uint8_t *p;
    sparse_shape(op, &channels, &k);
    p = v + (size_t)channels * (size_t)(k / 4);
    for (c = 0; c < channels; ++c) {
        const uint8_t *end = p + k / 8;
        const int8_t *a = x0, *b = x1;
        uint32_t acc0 = (uint32_t)folded[c], acc1 = acc0;
        int32_t g;
        for (g = 0; g < k / 4; ++g, a += 4, b += 4) {
            const uint32_t bits = (uint32_t)p[g / 2] >> (4 * (g % 2));
            const uint32_t i0 = bits & 3u, i1 = bits >> 2 & 3u;
            const int32_t w0 = sparse24_nibble(v[g], 0), w1 = sparse24_nibble(v[g], 4);
            acc0 += (uint32_t)(w0 * a[i0] + w1 * a[i1]);
            acc1 += (uint32_t)(w0 * b[i0] + w1 * b[i1]);
        }
        v += k / 4;
        p = end + k % 8 / 4; /* a last lone group's byte */
        out[c] = mf_affine_output(d, requant[c * d->channel_step], (int32_t)acc0);
        if (count == 2) {
            out[channels + c] = mf_affine_output(d, requant[c * d->channel_step], (int32_t)acc1);
        }
    }
}

void mf_sparse24_pixels(const mf_op *op, const mf_affine_data *d, const mf_requant *requant, const int8_t *const x[4],
                        int32_t count, int8_t *out)
{
    const int32_t channels = op->inputs[1].dims[0];
    void (*pair)(const mf_op *, const mf_affine_data *, const mf_requant *, const int8_t *, const int8_t *, int32_t,
                 int8_t *) = d->weights == MF_WEIGHTS_SPARSE_2_4_INT4 ? sparse24_int4_pair : sparse24_pair;
    pair(op, d, requant, x[0], count > 1 ? x[1] : x[0], count > 1 ? 2 : 1, out);
    if (count > 2) {
        pair(op, d, requant, x[2], count > 3 ? x[3] : x[2], count - 2, out + 2 * (size_t)channels);
    }
}

mf_status mf_sparse_run_expanded(const mf_op *op, mf_status (*dense)(const mf_op *))
{
    const mf_affine_data *d = (const mf_affine_data *)op->data;
    const int32_t k = mf_tensor_flat_size(&op->inputs[1]); /* one channel of K weights (mf_sparse.h) */
    int8_t *filter = (int8_t *)op->scratch;
    const mf_sparse_cursor channel = mf_sparse_channel(op, d, 0);
    mf_tensor inputs[MF_MAX_OP_TENSORS];
    mf_op expanded = *op;
    int32_t g;
    for (g = 0; g < k / 4; ++g) { /* each group's two values at their positions, zeros elsewhere */
        const uint32_t bits = (uint32_t)channel.bits[g / 2] >> (4 * (g % 2));
        int8_t *group = filter + 4 * g;
        memset(group, 0, 4);
        group[bits & 3u] = channel.values[2 * g];
        group[bits >> 2 & 3u] = channel.values[2 * g + 1];
    }
    memcpy(inputs, op->inputs, (size_t)op->input_count * sizeof inputs[0]);
    inputs[1].data = filter;
    expanded.inputs = inputs;
    expanded.scratch = (uint8_t *)op->scratch + sparse_expanded_filter_bytes(k);
    return dense(&expanded);
}
