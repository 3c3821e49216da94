#!/bin/sh
# make run: boot the kernel in QEMU in the background and open the mmtop TUI on
# its telemetry port; QEMU is stopped when mmtop exits (Ctrl-C included).
QEMU="$1"; MMTOP="$2"; SOCK="$3"; shift 3
rm -f "$SOCK"
"$QEMU" "$@" &
qemu_pid=$!
trap 'kill $qemu_pid 2>/dev/null; wait $qemu_pid 2>/dev/null' EXIT INT TERM
i=0
while [ ! -S "$SOCK" ]; do
    i=$((i + 1))
    if [ $i -gt 100 ] || ! kill -0 $qemu_pid 2>/dev/null; then
        echo "error: QEMU did not open $SOCK" >&2
        exit 1
    fi
    sleep 0.1
done
"$MMTOP" --connect "unix:$SOCK"
