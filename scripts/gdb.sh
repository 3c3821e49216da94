#!/bin/sh
# make gdb: boot the kernel headless (COM2 on a loopback TCP port) and
# attach gdb with symbols to the kernel's own GDB stub once the kernel is
# up; QEMU ends when gdb does.
#
# QEMU runs in a session of its own, so the Ctrl-C typed at gdb (which the
# terminal sends to its whole foreground process group) stops the kernel
# through gdb and does not end the machine; this script only notes it.
QEMU="$1"; ELF="$2"; PORT="$3"; SOCK="$4"; LOG="$5"; shift 5
rm -f "$SOCK" "$LOG"
setsid "$QEMU" "$@" &
qemu_pid=$!
trap 'kill $qemu_pid 2>/dev/null; wait $qemu_pid 2>/dev/null' EXIT TERM
trap ':' INT
i=0
until grep -q "kernel up" "$LOG" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 300 ] || ! kill -0 $qemu_pid 2>/dev/null; then
        echo "error: the kernel did not come up (see $LOG)" >&2
        exit 1
    fi
    sleep 0.1
done
gdb -q "$ELF" -x scripts/kernel-stub.gdb -ex "target remote 127.0.0.1:$PORT"
