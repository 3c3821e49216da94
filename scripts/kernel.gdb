# gdb settings for the kernel under QEMU's gdb stub.
set pagination off
set confirm off
# The higher-half kernel is not mapped while the CPU is still in the boot
# stub, so gdb cannot write int3 there: declaring the kernel image read-only
# makes gdb use hardware breakpoints for it (breakpoint auto-hw).
mem 0xffffffff80000000 0xffffffffffffffff ro
set breakpoint auto-hw on
