/*
 * RP2040 second-stage loader. The boot ROM copies these 252 bytes (plus the
 * CRC-32 the build appends) to SRAM at 0x20041F00 and runs them. They set the
 * SSI up for execute-in-place with the plain 03h serial read every QSPI flash
 * supports, then start the application whose vector table follows at
 * 0x10000100. Position independent: only PC-relative literals.
 */
    .syntax unified
    .cpu cortex-m0plus
    .thumb
    .section .text.boot2, "ax"
    .global mfb_boot2
    .type mfb_boot2, %function
mfb_boot2:
    ldr r3, =0x18000000          /* XIP_SSI base */
    movs r1, #0
    str r1, [r3, #0x08]          /* SSIENR = 0: disable to configure */
    movs r1, #4
    str r1, [r3, #0x14]          /* BAUDR: clk_sys / 4 */
    ldr r1, =0x001F0300          /* CTRLR0: standard SPI, 32-bit frames, EEPROM read mode */
    str r1, [r3, #0x00]
    movs r1, #0
    str r1, [r3, #0x04]          /* CTRLR1: one data frame per transfer */
    ldr r1, =0x03000218          /* SPI_CTRLR0: XIP command 03h, 8-bit instruction, 24-bit address */
    ldr r2, =0x180000F4
    str r1, [r2]
    movs r1, #1
    str r1, [r3, #0x08]          /* SSIENR = 1 */
    ldr r0, =0x10000100          /* the application's vector table */
    ldr r1, =0xE000ED08          /* VTOR */
    str r0, [r1]
    ldmia r0, {r0, r1}           /* initial SP, reset handler */
    msr msp, r0
    bx r1
    .ltorg
