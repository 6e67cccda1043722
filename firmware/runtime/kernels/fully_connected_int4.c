/* FULLY_CONNECTED with INT4 weights (mf_int4.h): the int8 kernel's loop, reading
 * each weight from its nibble in place. */
#include "mf_int4.h"

#define MF_FC_INT4
#define MF_FC_WEIGHT(w, index) mf_int4_at(w, index)
#define MF_FC_EVAL mf_fully_connected_int4_eval
#include "fully_connected.c"
