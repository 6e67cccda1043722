/*
 * nRF52840: starts the 64 MHz crystal (HFXO) for an accurate clock, and UART0
 * on P0.06 (TX) / P0.08 (RX), the DK's J-Link virtual COM port.
 */
#include "board.h"

#define REG(address) (*(volatile uint32_t *)(address))
#define CLOCK_TASKS_HFCLKSTART REG(0x40000000u)
#define CLOCK_EVENTS_HFCLKSTARTED REG(0x40000100u)
#define UART0_TASKS_STARTTX REG(0x40002008u)
#define UART0_EVENTS_TXDRDY REG(0x4000211Cu)
#define UART0_ENABLE REG(0x40002500u)
#define UART0_PSELTXD REG(0x4000250Cu)
#define UART0_PSELRXD REG(0x40002514u)
#define UART0_TXD REG(0x4000251Cu)
#define UART0_BAUDRATE REG(0x40002524u)
#define GPIO_P0_OUTSET REG(0x50000508u)
#define GPIO_P0_PIN_CNF(pin) REG(0x50000700u + 4u * (pin))

#define TX_PIN 6u
#define RX_PIN 8u
#define UART_ENABLE 4u
#define UART_BAUD_115200 0x01D7E000u
#define PIN_OUTPUT 1u

void mfb_init(void)
{
    CLOCK_EVENTS_HFCLKSTARTED = 0;
    CLOCK_TASKS_HFCLKSTART = 1;
    while (CLOCK_EVENTS_HFCLKSTARTED == 0u) {
    }
    GPIO_P0_OUTSET = 1u << TX_PIN;
    GPIO_P0_PIN_CNF(TX_PIN) = PIN_OUTPUT;
    UART0_PSELTXD = TX_PIN;
    UART0_PSELRXD = RX_PIN;
    UART0_BAUDRATE = UART_BAUD_115200;
    UART0_ENABLE = UART_ENABLE;
    UART0_TASKS_STARTTX = 1;
    mfb_cycles_init();
}

static void mfb_put_byte(uint8_t byte)
{
    UART0_EVENTS_TXDRDY = 0;
    UART0_TXD = byte;
    while (UART0_EVENTS_TXDRDY == 0u) {
    }
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
}
