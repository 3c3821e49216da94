#!/bin/sh
# Installs the system tools the workflow needs when they are missing:
# QEMU (x86_64 system emulator), GNU gdb, socat and tmux, with apt-get.
set -e
missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v gdb >/dev/null 2>&1 || missing="$missing gdb"
command -v socat >/dev/null 2>&1 || missing="$missing socat"
command -v tmux >/dev/null 2>&1 || missing="$missing tmux"
[ -z "$missing" ] && exit 0
echo "installing:$missing"
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: apt-get not found; install$missing with your package manager" >&2
    exit 1
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
