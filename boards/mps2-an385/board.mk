# mps2-an385: Arm Cortex-M3 (QEMU -M mps2-an385).
BOARD_CC := arm-none-eabi-gcc
BOARD_AR := arm-none-eabi-ar
BOARD_ARCH := -mcpu=cortex-m3 -mthumb
BOARD_SRCS := boards/mps2-an385/startup.c boards/mps2-an385/board.c
BOARD_TRANSPORTS :=
BOARD_ASM :=
BOARD_ASFLAGS :=
