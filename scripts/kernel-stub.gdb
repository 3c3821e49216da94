# gdb settings for the kernel's own GDB stub on COM2 (make gdb).
set pagination off
set confirm off
# A packet sent before the kernel opened COM2 is lost; wait for the retry.
set remotetimeout 5
# Breakpoints are int3s the stub plants through the direct map, so no
# read-only memory regions here (unlike kernel.gdb for QEMU's stub).
# Processes are threads (`info threads`, `thread N`); memory and backtraces
# follow the selected one. Symbols of a program, all linked at 0x400000:
#   add-symbol-file target/user/NAME.debug
