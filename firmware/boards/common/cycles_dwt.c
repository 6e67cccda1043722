/* Cycle counter from the DWT's CYCCNT, present on Cortex-M3/M4/M7/M33/M55 silicon. */
#include "board.h"

#define MFB_DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define MFB_DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define MFB_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define MFB_DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define MFB_DEMCR_TRCENA (1u << 24)
#define MFB_DWT_CYCCNTENA 1u
#define MFB_CORESIGHT_UNLOCK 0xC5ACCE55u

void mfb_cycles_init(void)
{
    MFB_DEMCR |= MFB_DEMCR_TRCENA;
    MFB_DWT_LAR = MFB_CORESIGHT_UNLOCK; /* the Cortex-M7 locks the DWT after reset */
    MFB_DWT_CYCCNT = 0;
    MFB_DWT_CTRL |= MFB_DWT_CYCCNTENA;
}

uint32_t mfb_cycles(void)
{
    return MFB_DWT_CYCCNT;
}
