/*
 * Console output shared by the demo applications: every fact is one
 * "MFD <key> ..." line that mcuforge.firmware.demos parses; numbers are
 * printed in decimal, exact values (doubles, feature vectors) in hex.
 */
#ifndef MFD_DEMO_IO_H
#define MFD_DEMO_IO_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

void mfdemo_put(const char *text);
void mfdemo_put_uint(uint32_t value);
void mfdemo_put_int(int32_t value);
/* The bytes as lowercase hex pairs, in memory order. */
void mfdemo_put_hex(const void *data, size_t bytes);
/* A double's IEEE-754 bits as 16 hex digits, most significant first. */
void mfdemo_put_double_bits(double value);
/* "MFD error <what> <status name>" */
void mfdemo_put_status(const char *what, mf_status status);
/* Loads the model and reports "MFD model <name> bytes=.. arena=..", or prints the fault and returns it. */
mf_status mfdemo_load(const char *name, const unsigned char *model_data, unsigned int model_bytes, unsigned char *arena,
                   unsigned int arena_bytes, mf_model **model);

#endif /* MFD_DEMO_IO_H */
