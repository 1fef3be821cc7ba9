#!/usr/bin/env bash
# Install the Debian packages the VM end-to-end runs need (make e2e-vm,
# make e2e-gen2): QEMU, qemu-img, the vde switch, debootstrap and the
# filesystem tools for the image, the SSH client. As root it installs what
# is missing; otherwise it prints the one command to run and exits 1.
# Extra package names may be given as arguments ("cmd:package" pairs are
# checked by command, plain names by dpkg).
set -euo pipefail

say() { printf 'vm-deps: %s\n' "$*" >&2; }

need=()
want() { # want COMMAND PACKAGE
	command -v "$1" >/dev/null 2>&1 || [ -x "/usr/sbin/$1" ] || [ -x "/sbin/$1" ] || need+=("$2")
}
want qemu-system-x86_64 qemu-system-x86
want qemu-img qemu-utils
want vde_switch vde2
want debootstrap debootstrap
want mke2fs e2fsprogs
want ssh openssh-client
for extra in "$@"; do
	case $extra in
	*:*) want "${extra%%:*}" "${extra#*:}" ;;
	*) dpkg -s "$extra" >/dev/null 2>&1 || need+=("$extra") ;;
	esac
done

[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	say "missing Debian packages; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends ${need[*]}"
	exit 1
fi
say "apt-get install ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
