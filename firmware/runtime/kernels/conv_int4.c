/* CONV_2D with INT4 weights (mf_int4.h): the int8 kernel's loop, reading
 * each weight from its nibble in place. */
#include "mf_int4.h"

#define MF_CONV_WEIGHT(w, index) mf_int4_at(w, index)
#define MF_CONV_EVAL mf_conv_int4_eval
#include "conv.c"
