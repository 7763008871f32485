/* sechan/mmio.h: device register access for the bare-metal drivers.
 *
 * On a board these are volatile loads and stores. A host test build
 * (-DSC_MMIO_SIM) turns them into calls to a simulated register file, so the
 * same driver code runs under cmocka against a device model
 * (test/util/mmiosim.c).
 */
#ifndef SECHAN_MMIO_H
#define SECHAN_MMIO_H

#include <stdint.h>

#if defined(SC_MMIO_SIM)
uint8_t sc_mmio_read8(uintptr_t addr);
uint32_t sc_mmio_read32(uintptr_t addr);
void sc_mmio_write8(uintptr_t addr, uint8_t v);
void sc_mmio_write32(uintptr_t addr, uint32_t v);
void sc_mmio_fence(void);
#else
static inline uint8_t sc_mmio_read8(uintptr_t addr)
{
    return *(volatile uint8_t *)addr;
}
static inline uint32_t sc_mmio_read32(uintptr_t addr)
{
    return *(volatile uint32_t *)addr;
}
static inline void sc_mmio_write8(uintptr_t addr, uint8_t v)
{
    *(volatile uint8_t *)addr = v;
}
static inline void sc_mmio_write32(uintptr_t addr, uint32_t v)
{
    *(volatile uint32_t *)addr = v;
}
/* Orders memory shared with a device (virtqueues) against register access. */
static inline void sc_mmio_fence(void)
{
#if defined(__riscv)
    __asm__ volatile("fence iorw, iorw" ::: "memory");
#elif defined(__arm__) || defined(__aarch64__)
    __asm__ volatile("dmb sy" ::: "memory");
#else
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
}
#endif

#endif
