/* virtio-selftest start-up (RISC-V 64, M-mode, QEMU virt with -bios none):
 * hart 0 sets up gp, sp, tp (picolibc keeps errno in thread-local storage),
 * clears .bss, installs a trap vector and calls main; other harts park. */
    .section .text.start, "ax"
    .globl _start
_start:
    csrw    mie, zero
    csrr    t0, mhartid
    bnez    t0, park

    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    la      tp, __tls_base

    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
2:
    la      t0, trap_entry
    csrw    mtvec, t0
    call    main
    call    selftest_exit

park:
    wfi
    j       park

    .align  4
trap_entry:
    la      sp, __stack_top
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    call    selftest_trap
    j       park
