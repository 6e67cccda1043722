/*
 * The console protocol of every firmware application (the standard app and
 * the demos), parsed by mcuforge.firmware.console: each fact is one line
 *
 *   MF <key> <word> ... <name>=<value> ...
 *
 * numbers in decimal, exact values (tensors, doubles, feature vectors) in hex.
 * Shared lines:
 *
 *   MF model <name> bytes=<model bytes>
 *   MF arena used=<bytes> size=<bytes>
 *   MF error <what> <status name> ...        (the run failed; main returns 1)
 *   MF done ...                              (the end line: the run finished)
 *
 * and the board's startup code prints "MF fault <name>" when the core faults.
 */
#ifndef MF_CONSOLE_H
#define MF_CONSOLE_H

#include <stddef.h>
#include <stdint.h>

#include "mf_engine.h"

/* Starts a line: "MF <key>". */
void mf_console_begin(const char *key);
/* Ends the line. */
void mf_console_end(void);
void mf_console_put(const char *text);
void mf_console_put_uint(uint32_t value);
void mf_console_put_int(int32_t value);
/* The bytes as lowercase hex pairs, in memory order. */
void mf_console_put_hex(const void *data, size_t bytes);
/* A double's IEEE-754 bits as 16 hex digits, most significant first. */
void mf_console_put_double_bits(double value);
/* "MF error <what> <status name>" */
void mf_console_status(const char *what, mf_status status);
/* "MF model <name> bytes=<model bytes>" */
void mf_console_model(const char *name, unsigned int model_bytes);
/* Loads the model and reports "MF arena used=.. size=..", or prints
 * "MF error load <status> op=.. tensor=.. name=.. arena_needed=.." and returns the status. */
mf_status mf_console_load(const unsigned char *model_data, unsigned int model_bytes, unsigned char *arena, unsigned int arena_bytes,
                          mf_model **model);

#endif /* MF_CONSOLE_H */
