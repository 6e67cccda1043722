/* The builtin-code -> kernel table, expanded from mf_kernel_list.h. */
#include "mf_kernel.h"

static const mf_kernel mf_kernel_table[] = {
#define MF_KERNEL(code, prefix, flags) {code, flags, prefix##_prepare, prefix##_eval},
#include MF_KERNEL_LIST
#undef MF_KERNEL
};

const mf_kernel *mf_find_kernel(int32_t builtin_code)
{
    size_t i;
    for (i = 0; i < sizeof mf_kernel_table / sizeof mf_kernel_table[0]; ++i) {
        if (mf_kernel_table[i].builtin_code == builtin_code) {
            return &mf_kernel_table[i];
        }
    }
    return NULL;
}
