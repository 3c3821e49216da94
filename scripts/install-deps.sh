#!/bin/sh
# Installs the system tools the workflow needs when they are missing:
# QEMU (x86_64 system emulator), GNU gdb, LLDB, socat and tmux, with apt-get.
set -e
# LLDB may be installed under a versioned name only (lldb-14, ...).
have_lldb() {
    command -v lldb >/dev/null 2>&1 && return 0
    old_ifs=$IFS
    IFS=:
    for dir in $PATH; do
        for bin in "$dir"/lldb-[0-9]*; do
            case "$bin" in
            *-server* | *-argdumper* | *-instr* | *-vscode* | *-dap*) ;;
            *) [ -x "$bin" ] && IFS=$old_ifs && return 0 ;;
            esac
        done
    done
    IFS=$old_ifs
    return 1
}
missing=""
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing="$missing qemu-system-x86"
command -v gdb >/dev/null 2>&1 || missing="$missing gdb"
have_lldb || missing="$missing lldb"
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
