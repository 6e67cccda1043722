/*
 * STM32F746NG: runs on the 16 MHz HSI it resets to; USART1 on PA9 (TX, AF7)
 * and PB7 (RX, AF7) is wired to the ST-LINK's virtual COM port.
 */
#include "board.h"

#define REG(address) (*(volatile uint32_t *)(address))
#define RCC_AHB1ENR REG(0x40023830u)
#define RCC_APB2ENR REG(0x40023844u)
#define GPIOA_MODER REG(0x40020000u)
#define GPIOA_AFRH REG(0x40020024u)
#define GPIOB_MODER REG(0x40020400u)
#define GPIOB_AFRL REG(0x40020420u)
#define USART1_CR1 REG(0x40011000u)
#define USART1_BRR REG(0x4001100Cu)
#define USART1_ISR REG(0x4001101Cu)
#define USART1_TDR REG(0x40011028u)

#define CLOCK_HZ 16000000u
#define BAUD 115200u
#define GPIO_MODE_AF 2u
#define AF7_USART1 7u
#define USART_CR1_UE (1u << 0)
#define USART_CR1_RE (1u << 2)
#define USART_CR1_TE (1u << 3)
#define USART_ISR_TXE (1u << 7)
#define USART_ISR_TC (1u << 6)

void mfb_init(void)
{
    RCC_AHB1ENR |= (1u << 0) | (1u << 1); /* GPIOA, GPIOB */
    RCC_APB2ENR |= 1u << 4;               /* USART1 */
    (void)RCC_APB2ENR;                    /* let the enable settle before touching the peripheral */
    GPIOA_MODER = (GPIOA_MODER & ~(3u << 18)) | (GPIO_MODE_AF << 18);
    GPIOA_AFRH = (GPIOA_AFRH & ~(0xFu << 4)) | (AF7_USART1 << 4);
    GPIOB_MODER = (GPIOB_MODER & ~(3u << 14)) | (GPIO_MODE_AF << 14);
    GPIOB_AFRL = (GPIOB_AFRL & ~(0xFu << 28)) | (AF7_USART1 << 28);
    USART1_BRR = (CLOCK_HZ + BAUD / 2u) / BAUD;
    USART1_CR1 = USART_CR1_UE | USART_CR1_TE | USART_CR1_RE;
    mfb_cycles_init();
}

void mfb_write(const char *text, size_t length)
{
    size_t i;
    for (i = 0; i < length; i++) {
        if (text[i] == '\n') {
            while ((USART1_ISR & USART_ISR_TXE) == 0u) {
            }
            USART1_TDR = '\r';
        }
        while ((USART1_ISR & USART_ISR_TXE) == 0u) {
        }
        USART1_TDR = (uint8_t)text[i];
    }
    while ((USART1_ISR & USART_ISR_TC) == 0u) {
    }
}
