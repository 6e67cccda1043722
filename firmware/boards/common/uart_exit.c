/* mfb_exit for real boards: nothing to return to, so report and sleep. */
#include "board.h"

void mfb_exit(int status)
{
    static const char done[] = "MF exit ";
    char digit = (char)('0' + (status & 7));
    mfb_write(done, sizeof done - 1);
    mfb_write(&digit, 1);
    mfb_write("\n", 1);
    for (;;) {
        __asm__ volatile("wfi");
    }
}
