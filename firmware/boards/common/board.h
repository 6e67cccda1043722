/*
 * Board support: what the application needs from a board, nothing more.
 * One implementation per console kind (semihosting, each UART) and per cycle
 * counter (DWT CYCCNT, SysTick); board.yaml picks the files for each board.
 */
#ifndef MFB_BOARD_H
#define MFB_BOARD_H

#include <stddef.h>
#include <stdint.h>

/* Clocks, console and cycle counter; called by the reset handler before main. */
void mfb_init(void);

/* Writes `length` bytes of text to the console (semihosting or UART). */
void mfb_write(const char *text, size_t length);

/* A free-running 32-bit cycle count; differences are exact across one wrap. */
uint32_t mfb_cycles(void);

/* Ends the run: under QEMU the emulator exits with `status`; a board halts. */
void mfb_exit(int status) __attribute__((noreturn));

/* Set up by mfb_init's cycle counter half (cycles_dwt.c or cycles_systick.c). */
void mfb_cycles_init(void);

#endif /* MFB_BOARD_H */
