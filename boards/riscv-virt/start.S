/* riscv-virt startup: hart 0 runs, the others park. QEMU (-bios none)
 * loads the ELF straight into RAM, so there is no .data to copy. */
    .section .text.start, "ax"
    .globl _start
_start:
    csrr    t0, mhartid
    bnez    t0, park
    .option push
    .option norelax
    la      gp, __global_pointer$
    .option pop
    la      sp, __stack_top
    la      tp, __tls_base
    la      t0, trap_entry
    csrw    mtvec, t0
    /* Zero .bss. */
    la      t0, __bss_start
    la      t1, __bss_end
1:  bgeu    t0, t1, 2f
    sd      zero, 0(t0)
    addi    t0, t0, 8
    j       1b
    /* Paint the stack below us so the run can report its depth. */
2:  la      t0, __stack_bottom
    addi    t1, sp, -64
    li      t2, 0x5ca1ab1e5ca1ab1e
3:  bgeu    t0, t1, 4f
    sd      t2, 0(t0)
    addi    t0, t0, 8
    j       3b
4:  call    main
park:
    wfi
    j       park

/* Any trap is a fault here (no interrupts are enabled). */
    .align  4
trap_entry:
    csrr    a0, mcause
    csrr    a1, mepc
    csrr    a2, mtval
    la      sp, __stack_top
    j       board_trap
