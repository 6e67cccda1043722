/*
 * RP2040: switches clk_ref and clk_sys to the 12 MHz crystal (no PLL, so the
 * UART divisor is exact and SysTick counts 12 MHz cycles), feeds clk_peri from
 * clk_sys, and drives UART0 (PL011) on GP0 (TX) / GP1 (RX).
 */
#include "board.h"

#define REG(address) (*(volatile uint32_t *)(address))
#define ATOMIC_CLEAR(address) REG((address) + 0x3000u)
#define RESETS_RESET 0x4000C000u
#define RESETS_RESET_DONE REG(0x4000C008u)
#define XOSC_CTRL REG(0x40024000u)
#define XOSC_STATUS REG(0x40024004u)
#define XOSC_STARTUP REG(0x4002400Cu)
#define CLK_REF_CTRL REG(0x40008030u)
#define CLK_REF_SELECTED REG(0x40008038u)
#define CLK_SYS_CTRL REG(0x4000803Cu)
#define CLK_SYS_SELECTED REG(0x40008044u)
#define CLK_PERI_CTRL REG(0x40008048u)
#define IO_BANK0_GPIO_CTRL(pin) REG(0x40014004u + 8u * (pin))
#define UART0_DR REG(0x40034000u)
#define UART0_FR REG(0x40034018u)
#define UART0_IBRD REG(0x40034024u)
#define UART0_FBRD REG(0x40034028u)
#define UART0_LCR_H REG(0x4003402Cu)
#define UART0_CR REG(0x40034030u)

#define RESET_IO_BANK0 (1u << 5)
#define RESET_PADS_BANK0 (1u << 8)
#define RESET_UART0 (1u << 22)
#define XOSC_RANGE_1_15MHZ 0xAA0u
#define XOSC_ENABLE (0xFABu << 12)
#define XOSC_STABLE (1u << 31)
#define XOSC_STARTUP_DELAY 47u /* ~1 ms at 12 MHz, in units of 256 cycles */
#define CLK_REF_SRC_XOSC 2u
#define CLK_SYS_SRC_CLK_REF 0u
#define CLK_PERI_ENABLE (1u << 11)
#define GPIO_FUNC_UART 2u
#define UART_LCR_8BIT_FIFO 0x70u
#define UART_CR_ENABLE_TX_RX 0x301u
#define UART_FR_TXFF (1u << 5)
#define UART_FR_BUSY (1u << 3)
/* 12 MHz / (16 * 115200) = 6.5104: integer 6, fraction round(0.5104 * 64) = 33. */
#define UART_IBRD_115200 6u
#define UART_FBRD_115200 33u

void mfb_init(void)
{
    uint32_t wanted = RESET_IO_BANK0 | RESET_PADS_BANK0 | RESET_UART0;
    XOSC_CTRL = XOSC_RANGE_1_15MHZ;
    XOSC_STARTUP = XOSC_STARTUP_DELAY;
    XOSC_CTRL = XOSC_RANGE_1_15MHZ | XOSC_ENABLE;
    while ((XOSC_STATUS & XOSC_STABLE) == 0u) {
    }
    CLK_REF_CTRL = CLK_REF_SRC_XOSC;
    while ((CLK_REF_SELECTED & (1u << CLK_REF_SRC_XOSC)) == 0u) {
    }
    CLK_SYS_CTRL = CLK_SYS_SRC_CLK_REF;
    while ((CLK_SYS_SELECTED & (1u << CLK_SYS_SRC_CLK_REF)) == 0u) {
    }
    CLK_PERI_CTRL = CLK_PERI_ENABLE; /* AUXSRC 0: clk_sys */

    ATOMIC_CLEAR(RESETS_RESET) = wanted;
    while ((RESETS_RESET_DONE & wanted) != wanted) {
    }
    IO_BANK0_GPIO_CTRL(0u) = GPIO_FUNC_UART;
    IO_BANK0_GPIO_CTRL(1u) = GPIO_FUNC_UART;
    UART0_IBRD = UART_IBRD_115200;
    UART0_FBRD = UART_FBRD_115200;
    UART0_LCR_H = UART_LCR_8BIT_FIFO;
    UART0_CR = UART_CR_ENABLE_TX_RX;
    mfb_cycles_init();
}

static void mfb_put_byte(uint8_t byte)
{
    while ((UART0_FR & UART_FR_TXFF) != 0u) {
    }
    UART0_DR = byte;
}

void mfb_write(const char *text, size_t length)
{
    size_t i;
    for (i = 0; i < length; i++) {
        if (text[i] == '\n') {
            mfb_put_byte('\r');
        }
        mfb_put_byte((uint8_t)text[i]);
    }
    while ((UART0_FR & UART_FR_BUSY) != 0u) {
    }
}
