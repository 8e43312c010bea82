"""Where things are in orch's guest, for every part that boots it or reads it (rootfs builds
the initramfs; qemu, local and LAVA's job and log find them). A module of constants only,
so that the LAVA room can know them without importing rootfs, which carries LAVA's guest
script."""

READY_MARKER = "orch-guest-ready"  # init prints it on the console once sshd is up
TESTS_DIR = "/opt/orch/selftests"  # where the test binaries are
