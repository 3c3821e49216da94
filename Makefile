# The developer workflow: `make run` to watch the kernel, `make test` to prove it.
# Both install what is missing first (Rust target from rust-toolchain.toml,
# QEMU and gdb with apt-get).

CARGO        ?= cargo
QEMU         ?= qemu-system-x86_64
KERNEL_TARGET := x86_64-unknown-none
KERNEL_ELF   := target/kernel.elf
MMTOP        := target/debug/mmtop

QEMU_MEM     ?= 128M
MMTOP_SOCK   ?= target/com1.sock
GDB_PORT     ?= 1234
QEMU_GDB_PORT ?= 1235
KERNEL_ARGS  ?=
DEBUGCON_LOG ?= target/debugcon.log

# Headless machine: COM1 (telemetry) on a unix socket, COM2 (GDB stub) on a
# loopback TCP port; neither waits for a client.
QEMU_ARGS = -kernel $(KERNEL_ELF) -m $(QEMU_MEM) -display none -no-reboot \
	-serial unix:$(MMTOP_SOCK),server=on,wait=off \
	-serial tcp:127.0.0.1:$(GDB_PORT),server=on,wait=off,nodelay=on \
	-debugcon file:$(DEBUGCON_LOG) \
	-device isa-debug-exit,iobase=0xf4,iosize=0x04 \
	-append "$(KERNEL_ARGS)"

.PHONY: all kernel mmtop start run gdb gdb-qemu gdb-server test test-host test-qemu bench \
	fmt clippy lint clean deps toolchain

all: kernel mmtop

# rustup does not add a pinned file's targets to an installed toolchain by
# itself; this reads rust-toolchain.toml and is instant when all is present.
toolchain:
	@rustup toolchain install >/dev/null 2>&1 || rustup toolchain install

deps:
	@scripts/install-deps.sh

kernel: toolchain
	$(CARGO) build -p kernel --target $(KERNEL_TARGET)
	@mkdir -p target
	cp target/$(KERNEL_TARGET)/debug/kernel $(KERNEL_ELF)

mmtop: toolchain
	$(CARGO) build -p mmtop

start: deps kernel
	@rm -f $(MMTOP_SOCK)
	@echo "telemetry (COM1): unix:$(MMTOP_SOCK)    -> mmtop log --connect unix:$(MMTOP_SOCK)"
	@echo "gdb stub  (COM2): tcp:127.0.0.1:$(GDB_PORT) -> gdb $(KERNEL_ELF) -ex 'target remote 127.0.0.1:$(GDB_PORT)'"
	@echo "                                      or lldb $(KERNEL_ELF) -o 'gdb-remote 127.0.0.1:$(GDB_PORT)'"
	@echo "kernel log:       $(DEBUGCON_LOG)"
	$(QEMU) $(QEMU_ARGS)

run: deps kernel mmtop
	@scripts/run.sh "$(QEMU)" "$(MMTOP)" "$(MMTOP_SOCK)" $(QEMU_ARGS)

# QEMU's own gdb stub, halted before the first instruction, for source-level
# debugging from the very start (F5 in VS Code uses this).
gdb-server: deps kernel
	@rm -f $(MMTOP_SOCK)
	@echo "QEMU gdb stub on 127.0.0.1:$(QEMU_GDB_PORT) (halted at reset)"
	$(QEMU) $(QEMU_ARGS) -gdb tcp:127.0.0.1:$(QEMU_GDB_PORT) -S

# The same, with gdb attached and stopped in kernel_main.
gdb-qemu: deps kernel
	@scripts/gdb-qemu.sh "$(QEMU)" "$(KERNEL_ELF)" "$(QEMU_GDB_PORT)" "$(MMTOP_SOCK)" $(QEMU_ARGS) -gdb tcp:127.0.0.1:$(QEMU_GDB_PORT) -S

# The kernel's own GDB stub on COM2: boots headless (the demo programs
# running) and attaches gdb with symbols once the kernel is up; the first
# packet stops the kernel, and its processes are gdb's threads.
gdb: deps kernel
	@scripts/gdb.sh "$(QEMU)" "$(KERNEL_ELF)" "$(GDB_PORT)" "$(MMTOP_SOCK)" "$(DEBUGCON_LOG)" $(QEMU_ARGS)

test: deps kernel
	KERNEL_ELF=$(abspath $(KERNEL_ELF)) $(CARGO) test --workspace

bench: deps kernel
	KERNEL_ELF=$(abspath $(KERNEL_ELF)) $(CARGO) bench -p bench

fmt: toolchain
	$(CARGO) fmt --all

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) clippy -p kernel --target $(KERNEL_TARGET) -- -D warnings
	$(CARGO) fmt --manifest-path user/Cargo.toml -- --check
	CARGO_ENCODED_RUSTFLAGS="$$(printf -- '-Crelocation-model=static\037-Ccode-model=small\037-Cforce-frame-pointers=yes\037-Clink-arg=-T$(abspath user/user.ld)\037-Clink-arg=--no-pie')" \
		$(CARGO) clippy --manifest-path user/Cargo.toml --target $(KERNEL_TARGET) --release \
		--target-dir target/user-lint -- -D warnings

clean:
	$(CARGO) clean
	rm -f $(MMTOP_SOCK)
