/*
 * Console and exit through Arm semihosting, for boards run by QEMU
 * (-semihosting-config enable=on,target=native): text goes to QEMU's stdout
 * and SYS_EXIT_EXTENDED makes QEMU exit with the application's status.
 */
#include "board.h"

#define MFB_SYS_OPEN 0x01u
#define MFB_SYS_WRITE 0x05u
#define MFB_SYS_EXIT_EXTENDED 0x20u
#define MFB_ADP_APPLICATION_EXIT 0x20026u
#define MFB_OPEN_MODE_WRITE 4u /* "w": ":tt" opened for writing is the host's stdout */

static uint32_t mfb_stdout_handle;

static uint32_t mfb_semihost(uint32_t operation, const void *argument)
{
    register uint32_t r0 __asm__("r0") = operation;
    register const void *r1 __asm__("r1") = argument;
    __asm__ volatile("bkpt 0xAB" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

void mfb_write(const char *text, size_t length)
{
    uint32_t block[3];
    block[0] = mfb_stdout_handle;
    block[1] = (uint32_t)(uintptr_t)text;
    block[2] = (uint32_t)length;
    (void)mfb_semihost(MFB_SYS_WRITE, block);
}

void mfb_exit(int status)
{
    uint32_t block[2];
    block[0] = MFB_ADP_APPLICATION_EXIT;
    block[1] = (uint32_t)status;
    for (;;) {
        (void)mfb_semihost(MFB_SYS_EXIT_EXTENDED, block);
    }
}

void mfb_init(void)
{
    static const char console[] = ":tt";
    uint32_t block[3];
    block[0] = (uint32_t)(uintptr_t)console;
    block[1] = MFB_OPEN_MODE_WRITE;
    block[2] = sizeof console - 1;
    mfb_stdout_handle = mfb_semihost(MFB_SYS_OPEN, block);
    mfb_cycles_init();
}
