//! Harness for tests that boot the kernel in QEMU.
