# gdb settings for the kernel's own GDB stub on COM2 (make gdb-stub).
set pagination off
set confirm off
# A packet sent before the kernel opened COM2 is lost; wait for the retry.
set remotetimeout 5
# Breakpoints are int3s the stub plants through the direct map, so no
# read-only memory regions here (unlike kernel.gdb for QEMU's stub).
