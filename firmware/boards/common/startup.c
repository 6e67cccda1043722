/*
 * Reset handler and vector table shared by every Cortex-M board: copy .data
 * from flash, zero .bss, turn the FPU on when the build uses it, then run
 * main and hand its status to mfb_exit. Faults print their name and stop, so
 * a crash under QEMU ends the run with a status instead of hanging.
 */
#include "board.h"

extern uint32_t __data_load[];
extern uint32_t __data_start[];
extern uint32_t __data_end[];
extern uint32_t __bss_start[];
extern uint32_t __bss_end[];
extern uint32_t __stack_top[];

int main(void);

#define MFB_CPACR (*(volatile uint32_t *)0xE000ED88u)
#define MFB_FAULT_STATUS 3

void mfb_reset(void) __attribute__((noreturn));
void mfb_systick_handler(void) __attribute__((weak));

static void mfb_fault(const char *name)
{
    static const char prefix[] = "MF fault ";
    size_t length = 0;
    while (name[length] != '\0') {
        length++;
    }
    mfb_write(prefix, sizeof prefix - 1);
    mfb_write(name, length);
    mfb_write("\n", 1);
    mfb_exit(MFB_FAULT_STATUS);
}

static void mfb_nmi(void) { mfb_fault("nmi"); }
static void mfb_hard_fault(void) { mfb_fault("hardfault"); }
static void mfb_mem_fault(void) { mfb_fault("memmanage"); }
static void mfb_bus_fault(void) { mfb_fault("busfault"); }
static void mfb_usage_fault(void) { mfb_fault("usagefault"); }
static void mfb_unexpected(void) { mfb_fault("unexpected-interrupt"); }

void mfb_systick_handler(void) { mfb_unexpected(); }

void mfb_reset(void)
{
    uint32_t *src = __data_load;
    uint32_t *dst;
    for (dst = __data_start; dst < __data_end; dst++) {
        *dst = *src++;
    }
    for (dst = __bss_start; dst < __bss_end; dst++) {
        *dst = 0;
    }
#if defined(__ARM_FP)
    MFB_CPACR |= 0xFu << 20; /* CP10 and CP11: full access */
    __asm volatile("dsb\n\tisb" ::: "memory");
#endif
    mfb_init();
    mfb_exit(main());
}

typedef void (*mfb_vector)(void);

/* The initial stack pointer, then 15 system exceptions; the application
 * enables no peripheral interrupts. */
typedef struct mfb_vector_table {
    uint32_t *initial_stack;
    mfb_vector handlers[15];
} mfb_vector_table;

__attribute__((section(".vectors"), used)) static const mfb_vector_table mfb_vectors = {
    __stack_top,
    {
    mfb_reset,
    mfb_nmi,
    mfb_hard_fault,
    mfb_mem_fault,
    mfb_bus_fault,
    mfb_usage_fault,
    mfb_unexpected, /* SecureFault on v8-M */
    0,
    0,
    0,
    mfb_unexpected, /* SVCall */
    mfb_unexpected, /* DebugMonitor */
    0,
    mfb_unexpected, /* PendSV */
    mfb_systick_handler,
    },
};
