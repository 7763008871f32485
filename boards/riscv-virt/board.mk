# riscv-virt: RV64 (QEMU -M virt -bios none), machine mode.
BOARD_CC := riscv64-unknown-elf-gcc
BOARD_AR := riscv64-unknown-elf-ar
BOARD_ARCH := -march=rv64imac -mabi=lp64 -mcmodel=medany
BOARD_ASFLAGS := -march=rv64imac_zicsr
BOARD_SRCS := boards/riscv-virt/board.c
BOARD_TRANSPORTS := $(wildcard transports/virtio_*.c)
BOARD_ASM := boards/riscv-virt/start.S
# Pointers are twice as wide as on Cortex-M: Mbed TLS needs more arena.
ARENA_psk := 16384
ARENA_x509 := 28672
ARENA_sasl-digest := 2048
ARENA_sasl-scram := 16384
FW_STACK := 8192
FW_STACK_sasl-scram := 10240
