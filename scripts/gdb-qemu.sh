#!/bin/sh
# make gdb-qemu: boot the kernel halted under QEMU's gdb stub, attach gdb with
# symbols and stop in kernel_main; QEMU ends when gdb does.
QEMU="$1"; ELF="$2"; PORT="$3"; SOCK="$4"; shift 4
rm -f "$SOCK"
"$QEMU" "$@" &
qemu_pid=$!
trap 'kill $qemu_pid 2>/dev/null; wait $qemu_pid 2>/dev/null' EXIT INT TERM
gdb -q "$ELF" -ex "target remote 127.0.0.1:$PORT" -x scripts/kernel.gdb -ex 'break kernel_main' -ex continue
