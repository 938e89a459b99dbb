/* startup_m4.c - board support of snncc's C target on an Arm Cortex-M4: QEMU's
 * mps2-an386 board (AN386 FPGA image), a model of a part with 512 KB of flash at 0x0 and
 * 160 KB of SRAM at 0x20000000 (m4.ld).
 *
 * On reset the core loads the stack pointer and the reset handler from the vector table
 * at 0x0; Reset_Handler copies .data from flash, zeroes .bss, opens the semihosting
 * standard streams (newlib's librdimon), reads the command line (semihosting
 * SYS_GET_CMDLINE: QEMU's -semihosting-config arg=...), starts the board's timer and
 * calls main; exit() ends the emulation with main's status (semihosting SYS_EXIT).
 *
 * The timer is the CMSDK APB timer 0 (0x40000000) counting down from 0xffffffff at the
 * 25 MHz peripheral clock; snncc_board_ticks() returns the ticks since reset.  Under
 * `qemu-system-arm -icount shift=0` every guest instruction advances the virtual clock by
 * exactly 1 ns, so one tick is 40 instructions: the harness reports ticks, the host
 * converts them (snncc.targets.c.m4). */
#include <stdint.h>

extern uint32_t __stack_top, __data_load, __data_start, __data_end, __bss_start__, __bss_end__;
extern int main(int argc, char **argv);
extern void initialise_monitor_handles(void);
extern void exit(int status);

void Reset_Handler(void);
uint32_t snncc_board_ticks(void);

static void Fault_Handler(void)
{
    for (;;) {
    }
}

/* initial stack pointer, then the 15 system exception handlers (no interrupts are used) */
__attribute__((section(".vectors"), used)) void (*const snncc_vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, Fault_Handler, Fault_Handler, Fault_Handler, Fault_Handler,
    Fault_Handler, 0, 0, 0, 0, Fault_Handler, Fault_Handler, 0, Fault_Handler, Fault_Handler};

#define TIMER0 ((volatile uint32_t *)0x40000000u) /* CTRL, VALUE, RELOAD */

uint32_t snncc_board_ticks(void)
{
    return 0xffffffffu - TIMER0[1];
}

static int semihost(int op, void *arg)
{
    register int r0 __asm__("r0") = op;
    register void *r1 __asm__("r1") = arg;
    __asm__ volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
    return r0;
}

#define MAX_ARGS 8
static char cmdline[512];
static char *argv[MAX_ARGS + 1];

/* split the semihosting command line at spaces (the host quotes no arguments) */
static int args(void)
{
    struct {
        char *buf;
        int len;
    } a = {cmdline, (int)sizeof cmdline - 1};
    int argc = 0;
    char *p = cmdline;
    if (semihost(0x15, &a) != 0) /* SYS_GET_CMDLINE */
        return 0;
    cmdline[a.len] = 0;
    while (*p && argc < MAX_ARGS) {
        while (*p == ' ')
            *p++ = 0;
        if (!*p)
            break;
        argv[argc++] = p;
        while (*p && *p != ' ')
            p++;
    }
    argv[argc] = 0;
    return argc;
}

void Reset_Handler(void)
{
    uint32_t *src = &__data_load, *dst = &__data_start;
    int argc;
    while (dst < &__data_end)
        *dst++ = *src++;
    for (dst = &__bss_start__; dst < &__bss_end__;)
        *dst++ = 0;
    initialise_monitor_handles();
    argc = args();
    TIMER0[2] = 0xffffffffu; /* RELOAD */
    TIMER0[1] = 0xffffffffu; /* VALUE */
    TIMER0[0] = 1u;          /* CTRL: enable */
    exit(main(argc, argv));
}
