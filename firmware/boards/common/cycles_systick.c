/*
 * Cycle counter from SysTick, for cores without DWT CYCCNT (Cortex-M0+) and
 * for QEMU, which does not emulate the DWT. SysTick counts processor clocks
 * down from 2^24 - 1; its interrupt counts the wraps.
 */
#include "board.h"

#define MFB_SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define MFB_SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define MFB_SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define MFB_SYST_ENABLE_TICKINT_CPUCLK 0x7u
#define MFB_SYST_MAX 0x00FFFFFFu

static volatile uint32_t mfb_systick_wraps;

void mfb_systick_handler(void)
{
    mfb_systick_wraps++;
}

void mfb_cycles_init(void)
{
    MFB_SYST_RVR = MFB_SYST_MAX;
    MFB_SYST_CVR = 0;
    MFB_SYST_CSR = MFB_SYST_ENABLE_TICKINT_CPUCLK;
}

uint32_t mfb_cycles(void)
{
    uint32_t wraps;
    uint32_t current;
    do { /* re-read when a wrap lands between the two reads */
        wraps = mfb_systick_wraps;
        current = MFB_SYST_CVR;
    } while (wraps != mfb_systick_wraps);
    return (wraps << 24) + (MFB_SYST_MAX - current);
}
