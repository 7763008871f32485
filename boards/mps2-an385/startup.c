/* mps2-an385 startup: the vector table and the reset handler. The core
 * loads the stack pointer from entry 0 and jumps to entry 1. */
#include <stdint.h>
#include <string.h>

extern uint32_t __data_load[], __data_start[], __data_end[];
extern uint32_t __bss_start[], __bss_end[];
extern uint32_t __stack_top[], __stack_bottom[];

int main(void);
void reset_handler(void);
void systick_handler(void);
void fault_handler(void);
void board_fault(const char *what) __attribute__((noreturn));

/* Paint the stack so a run can report how deep it went (board.c). */
#define STACK_PAINT 0x5ca1ab1eu

__attribute__((noreturn)) void reset_handler(void)
{
    uint32_t *src = __data_load;
    for (uint32_t *dst = __data_start; dst < __data_end;)
        *dst++ = *src++;
    for (uint32_t *dst = __bss_start; dst < __bss_end;)
        *dst++ = 0;
    /* Everything below the current frame is free stack. */
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    for (uint32_t *p = __stack_bottom; p < sp - 16; p++)
        *p = STACK_PAINT;
    main();
    board_fault("main returned");
}

void fault_handler(void)
{
    board_fault("hard fault");
}

static void unexpected_handler(void)
{
    board_fault("unexpected exception");
}

typedef void (*vector_fn)(void);

__attribute__((section(".vectors"), used)) static const vector_fn vectors[16 + 32] = {
    [0] = (vector_fn)(uintptr_t)__stack_top,
    [1] = reset_handler,
    [2] = unexpected_handler,   /* NMI */
    [3] = fault_handler,        /* HardFault */
    [4] = fault_handler,        /* MemManage */
    [5] = fault_handler,        /* BusFault */
    [6] = fault_handler,        /* UsageFault */
    [11] = unexpected_handler,  /* SVCall */
    [14] = unexpected_handler,  /* PendSV */
    [15] = systick_handler,
};
