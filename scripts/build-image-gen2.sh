#!/usr/bin/env bash
# Build the Debian 12 (bookworm) image that boots through UEFI firmware with
# Secure Boot, the way a Hyper-V Generation 2 VM (or QEMU with OVMF) boots an
# Ubuntu cloud image: a GPT disk with an EFI system partition holding
# Microsoft-signed shim and Debian-signed GRUB, and an ext4 root file system
# with Debian's signed kernel. make e2e-gen2 boots it (tests/e2egen2); the
# qemu provider boots it too when a node's image: names it (no kernel beside
# it, so the firmware boots the disk).
#
#   sudo scripts/build-image-gen2.sh          build (or reuse) the image
#   scripts/build-image-gen2.sh --print-path  print the image path; exit 0
#                                             when it is built, 1 when not
#
# The disk (no loop mount anywhere):
#   partition 1  EFI system partition, 64 MiB FAT32 (mkfs.vfat on a separate
#                file, filled with mtools' mcopy, dd'd into place):
#                  EFI/BOOT/BOOTX64.EFI   shim-signed's shimx64.efi.signed
#                  EFI/BOOT/grubx64.efi   grub-efi-amd64-signed's grubx64.efi.signed
#                  EFI/debian/grub.cfg    read by that GRUB: loads the kernel below
#   partition 2  ext4 root (mke2fs -d from the debootstrap tree), with
#                /boot/vmlinuz-* (Debian signs it) and a small initrd that
#                mounts root=UUID=... from virtio-blk, virtio-scsi, AHCI or
#                Hyper-V's storvsc
# Its size is a whole number of MiB, so the dynamic VHDX made from it
# (qemu-img convert -O vhdx -o subformat=dynamic) has the 1 MiB-aligned
# virtual size Hyper-V wants. The build checks the signatures (sbverify):
# shim by Microsoft, GRUB and the kernel by Debian.
#
# Output, in ${CALCLAB_CACHE:-$HOME/.cache/calclab} (never inside the repo):
#   debian-12-gen2-<recipe>.qcow2   the disk
#   debian-12-gen2.qcow2            symlink to the newest build
# <recipe> is a hash of this script: running it again is a no-op until the
# script changes. Needs root (debootstrap, chroot); installs debootstrap,
# qemu-utils, e2fsprogs, gdisk, dosfstools, mtools and sbsigntool with
# apt-get when missing. The mirror is the one this machine's apt uses, or
# CALCLAB_DEBIAN_MIRROR=http://.../debian.
set -euo pipefail

SUITE=bookworm
NAME=debian-12-gen2
# mokutil: `mokutil --sb-state` in the guest. cloud-guest-utils: growpart,
# so cloud-init grows the root partition when the VM's disk is made larger.
PACKAGES=(
	systemd-sysv udev kmod iproute2 iputils-ping
	openssh-server sudo
	cloud-init python3-cffi-backend cloud-guest-utils fdisk
	linux-image-amd64 initramfs-tools mokutil
)
# The initrd mounts the root from any of the disk controllers a Gen2-like VM
# has: virtio (QEMU), AHCI, Hyper-V's synthetic SCSI (storvsc on vmbus).
INITRD_MODULES=(virtio_pci virtio_blk virtio_scsi sd_mod ahci hv_vmbus hv_storvsc ext4 crc32c_generic)
# Hardware neither QEMU nor Hyper-V gives a VM. SCSI, ATA and CD-ROM stay:
# the seed ISO is on a (virtual) DVD drive.
PRUNE_MODULES=(
	drivers/gpu drivers/media drivers/infiniband drivers/staging
	drivers/net/wireless drivers/net/ethernet drivers/bluetooth drivers/iio
	drivers/usb drivers/input/touchscreen drivers/isdn
	drivers/mmc drivers/mtd drivers/nfc drivers/platform drivers/thunderbolt
	drivers/comedi drivers/hwmon drivers/target drivers/md drivers/video
	drivers/net/usb drivers/net/can drivers/net/wwan drivers/net/ieee802154
	fs/xfs fs/nfs fs/nfsd fs/btrfs fs/ocfs2 fs/smb fs/f2fs fs/ceph fs/gfs2 fs/afs
	fs/ubifs fs/dlm fs/jfs fs/reiserfs fs/nilfs2
	sound net/wireless net/mac80211 net/bluetooth net/sunrpc
)
ESP_MB=64
ROOT_MB=2048
DISK_MB=$((1 + ESP_MB + ROOT_MB + 1)) # 1 MiB for each GPT copy
CMDLINE="rw console=tty1 console=ttyS0,115200 panic=-1 mitigations=off"

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")

say() { printf 'build-image-gen2: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

if [[ -z ${CALCLAB_CACHE:-} ]]; then
	home=$HOME
	if [[ $EUID -eq 0 && -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
		home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
	fi
	CALCLAB_CACHE=$home/.cache/calclab
fi
CACHE=$CALCLAB_CACHE
recipe=$(sha256sum "$SCRIPT" | cut -c1-12)
IMAGE=$CACHE/$NAME-$recipe.qcow2

built() { [[ -s $IMAGE ]]; }

case "${1:-}" in
--print-path)
	echo "$IMAGE"
	built
	exit
	;;
-h | --help)
	sed -n '2,/^set -euo/p' "$SCRIPT" | sed '$d; s/^# \{0,1\}//'
	exit 0
	;;
"") ;;
*) die "unknown argument '$1' (see --help)" ;;
esac

T0=$SECONDS
STEP_T=$SECONDS
NSTEPS=8
n=0
step() {
	n=$((n + 1))
	STEP_T=$SECONDS
	say "[$n/$NSTEPS] $* (at ${SECONDS}s)"
}
done_step() { say "      done in $((SECONDS - STEP_T))s"; }

finish() {
	ln -sfn "$(basename "$IMAGE")" "$CACHE/$NAME.qcow2"
	echo "image: $IMAGE ($(du -h "$IMAGE" | cut -f1) on disk)"
}

if built; then
	say "image is up to date (recipe $recipe)"
	if [[ -w $CACHE ]]; then finish; else echo "image: $IMAGE"; fi
	exit 0
fi

[[ $EUID -eq 0 ]] || die "building the image needs root (debootstrap, chroot): run 'sudo $0' (--print-path does not)"

# --- 1. tools --------------------------------------------------------------

step "tools: debootstrap, qemu-img, mke2fs, sgdisk, mkfs.vfat, mtools, sbverify"
need=()
want() { command -v "$1" >/dev/null || [[ -x /usr/sbin/$1 || -x /sbin/$1 ]] || need+=("$2"); }
want debootstrap debootstrap
want qemu-img qemu-utils
want mke2fs e2fsprogs
want sgdisk gdisk
want mkfs.vfat dosfstools
want mcopy mtools
want sbverify sbsigntool
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
	say "      installing ${need[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
done_step

# --- 2. mirror -------------------------------------------------------------

# apt_mirror prints the first URI of this machine's apt sources that serves
# $SUITE (deb822 .sources files and one-line .list files), as
# scripts/build-image.sh does.
apt_mirror() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[[ -r $f ]] || continue
		awk -v suite="$SUITE" '
			function flush() {
				if (types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ") && enabled != "no" && uri != "") { print uri; found = 1; exit }
				types = suites = uri = enabled = ""
			}
			/^[ \t]*#/ { next }
			/^[ \t]*$/ { flush(); next }
			{
				key = tolower($1); sub(/:$/, "", key)
				if (key == "types") { $1 = ""; types = $0 }
				else if (key == "suites") { $1 = ""; suites = $0; gsub(/^ +| +$/, "", suites) }
				else if (key == "uris") { uri = $2 }
				else if (key == "enabled") { enabled = tolower($2) }
			}
			END { if (!found) flush() }
		' "$f"
	done
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
		sed -e 's/#.*//' -e 's/\[[^]]*\]//' |
		awk -v suite="$SUITE" '$1 == "deb" && $3 == suite { print $2 }'
}

step "mirror: from this machine's apt configuration"
MIRROR=${CALCLAB_DEBIAN_MIRROR:-}
if [[ -z $MIRROR ]]; then
	MIRROR=$(apt_mirror | grep -E '^(https?|ftp|file):' | grep -v -- '-security' | head -n1 || true)
fi
[[ -n $MIRROR ]] || die "no Debian $SUITE mirror in /etc/apt/sources.list{,.d/*}: set CALCLAB_DEBIAN_MIRROR=http://<mirror>/debian"
say "      $MIRROR"
done_step

# --- 3. debootstrap --------------------------------------------------------

if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	sudo -u "$SUDO_USER" mkdir -p "$CACHE" 2>/dev/null || mkdir -p "$CACHE"
else
	mkdir -p "$CACHE"
fi
exec 9>>"$CACHE/.build-image-gen2.lock"
flock -n 9 || {
	say "another build-image-gen2.sh is running; waiting for it"
	flock 9
}
if built; then
	say "image is up to date (recipe $recipe)"
	finish
	exit 0
fi

WORK=$CACHE/.build-gen2-$recipe
ROOT=$WORK/root
cleanup() {
	local m
	for m in "$ROOT/proc" "$ROOT/sys" "$ROOT/dev"; do
		if mountpoint -q "$m" 2>/dev/null; then umount -l "$m" || true; fi
	done
	rm -rf "$WORK"
}
trap cleanup EXIT
cleanup
mkdir -p "$WORK"

step "debootstrap $SUITE (minbase + ${#PACKAGES[@]} packages) into $ROOT"
include=$(
	IFS=,
	echo "${PACKAGES[*]}"
)
if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
	tail -n 30 "$WORK/debootstrap.log" >&2
	cp "$WORK/debootstrap.log" "$CACHE/debootstrap-gen2-failed.log" 2>/dev/null || true
	die "debootstrap failed (full log: $CACHE/debootstrap-gen2-failed.log)"
fi
done_step

# --- 4. boot chain ---------------------------------------------------------

# The signed shim and GRUB are taken from their packages without installing
# them (their maintainer scripts would run grub-install against this host).
step "boot chain: shim-signed, grub-efi-amd64-signed; check signatures"
mkdir -p "$WORK/debs" "$WORK/efi"
fetch_debs() { (cd "$WORK/debs" && apt-get download -q shim-signed grub-efi-amd64-signed) >"$WORK/download.log" 2>&1; }
if ! fetch_debs; then
	apt-get update -q >/dev/null
	fetch_debs || {
		cat "$WORK/download.log" >&2
		die "apt-get download shim-signed grub-efi-amd64-signed failed"
	}
fi
for deb in "$WORK"/debs/*.deb; do dpkg-deb -x "$deb" "$WORK/efi"; done
SHIM=$WORK/efi/usr/lib/shim/shimx64.efi.signed
GRUB=$WORK/efi/usr/lib/grub/x86_64-efi-signed/grubx64.efi.signed
kver=$(basename "$(find "$ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n1)")
[[ -n $kver ]] || die "no kernel modules in the image (did linux-image-amd64 install?)"
KERNEL=$ROOT/boot/vmlinuz-$kver
signed_by() { # signed_by FILE PATTERN: the signature names PATTERN
	local out
	out=$(sbverify --list "$1" 2>&1) || true
	grep -q "$2" <<<"$out" || die "$(basename "$1") is not signed by '$2' (sbverify --list: $(tr '\n' ' ' <<<"$out"))"
	say "      $(basename "$1"): $(grep -m1 'subject:' <<<"$out" | sed 's/^ *- *//')"
}
signed_by "$SHIM" "Microsoft Corporation UEFI CA"
signed_by "$GRUB" "Debian Secure Boot"
signed_by "$KERNEL" "Debian Secure Boot"
done_step

# --- 5. configure ----------------------------------------------------------

step "configure: cloud-init, serial console, fstab, initrd"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"
cat >"$ROOT/etc/cloud/cloud.cfg.d/99_calclab.cfg" <<'EOF'
# calclab: the seed is a NoCloud ISO (volume label cidata) on a CD/DVD drive
# (Hyper-V, e2e-gen2) or a second disk (qemu provider).
datasource_list: [ NoCloud, None ]
ssh_genkeytypes: [ ed25519, ecdsa ]
cloud_init_modules:
  - migrator
  - seed_random
  - bootcmd
  - write-files
  - growpart
  - resizefs
  - mounts
  - set_hostname
  - update_hostname
  - update_etc_hosts
  - users-groups
  - ssh
cloud_config_modules:
  - set-passwords
  - timezone
  - runcmd
cloud_final_modules:
  - write-files-deferred
  - scripts-vendor
  - scripts-per-once
  - scripts-per-boot
  - scripts-per-instance
  - scripts-user
  - final-message
  - power-state-change
EOF
chroot "$ROOT" systemctl enable systemd-networkd.service >/dev/null 2>&1
mkdir -p "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60\n' \
	>"$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/10-calclab.conf"
chroot "$ROOT" systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer >/dev/null 2>&1 || true
ROOT_UUID=$(cat /proc/sys/kernel/random/uuid)
echo "UUID=$ROOT_UUID / ext4 defaults,errors=remount-ro 0 0" >"$ROOT/etc/fstab"
echo "calclab-node" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcalclab-node\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
ln -sf /lib/systemd/system/serial-getty@.service \
	"$ROOT/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
mkdir -p "$ROOT/var/log/journal" "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\n' >"$ROOT/etc/systemd/journald.conf.d/10-calclab.conf"
chroot "$ROOT" passwd -l root >/dev/null
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
printf 'MODULES=list\nCOMPRESS=gzip\n' >"$ROOT/etc/initramfs-tools/conf.d/calclab.conf"
printf '%s\n' "${INITRD_MODULES[@]}" >"$ROOT/etc/initramfs-tools/modules"
chroot "$ROOT" update-initramfs -u -k "$kver" >"$WORK/initramfs.log" 2>&1 ||
	{
		cat "$WORK/initramfs.log" >&2
		die "update-initramfs failed"
	}
umount "$ROOT/dev" "$ROOT/sys" "$ROOT/proc"
for d in "${PRUNE_MODULES[@]}"; do
	rm -rf "$ROOT/lib/modules/$kver/kernel/$d"
done
chroot "$ROOT" depmod -a "$kver"
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
	"$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
	"$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* \
	"$ROOT"/tmp/* "$ROOT"/var/tmp/*
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
say "      root file system: $(du -sh "$ROOT" | cut -f1), kernel $kver, root UUID $ROOT_UUID"
done_step

# --- 6. ESP ----------------------------------------------------------------

step "ESP: FAT32 ($ESP_MB MiB) with shim, GRUB and grub.cfg (mtools, no mount)"
cat >"$WORK/grub.cfg" <<EOF
# calclab: Debian's signed GRUB (loaded by shim) reads this file.
set timeout=0
search --no-floppy --fs-uuid --set=root $ROOT_UUID
linux /boot/vmlinuz-$kver root=UUID=$ROOT_UUID $CMDLINE
initrd /boot/initrd.img-$kver
boot
EOF
ESP=$WORK/esp.img
truncate -s "${ESP_MB}M" "$ESP"
mkfs.vfat -F 32 -n EFI "$ESP" >/dev/null
export MTOOLS_SKIP_CHECK=1
mmd -i "$ESP" ::/EFI ::/EFI/BOOT ::/EFI/debian
mcopy -i "$ESP" "$SHIM" ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$ESP" "$GRUB" ::/EFI/BOOT/grubx64.efi
mcopy -i "$ESP" "$WORK/grub.cfg" ::/EFI/debian/grub.cfg
mdir -i "$ESP" -/ -b ::/EFI | sed 's/^/      /' >&2
done_step

# --- 7. disk ---------------------------------------------------------------

step "disk: GPT ($DISK_MB MiB), ESP + ext4 root ($ROOT_MB MiB, mke2fs -d)"
truncate -s "${ROOT_MB}M" "$WORK/root.raw"
mke2fs -q -F -t ext4 -L calclab-root -U "$ROOT_UUID" -E root_owner=0:0 -d "$ROOT" "$WORK/root.raw"
DISK=$WORK/disk.raw
truncate -s "${DISK_MB}M" "$DISK"
sgdisk -o \
	-n 1:2048:+"${ESP_MB}M" -t 1:ef00 -c 1:"EFI system partition" \
	-n 2:$(((1 + ESP_MB) * 2048)):+"${ROOT_MB}M" -t 2:8300 -c 2:root \
	"$DISK" >"$WORK/sgdisk.log" 2>&1 || die "sgdisk: $(cat "$WORK/sgdisk.log")"
dd if="$ESP" of="$DISK" bs=1M seek=1 conv=notrunc status=none
dd if="$WORK/root.raw" of="$DISK" bs=1M seek=$((1 + ESP_MB)) conv=notrunc,sparse status=none
# The table must hold both partitions where the file systems were written.
sgdisk -v "$DISK" | grep -q 'No problems found' || die "sgdisk -v: the partition table is not sound: $(sgdisk -v "$DISK")"
sgdisk -i 1 "$DISK" | grep -q '^First sector: 2048 ' || die "no EFI system partition at sector 2048: $(sgdisk -p "$DISK")"
sgdisk -i 2 "$DISK" | grep -q "^First sector: $(((1 + ESP_MB) * 2048)) " || die "no root partition at $((1 + ESP_MB)) MiB: $(sgdisk -p "$DISK")"
sgdisk -p "$DISK" | sed -n '/^Number/,$p' | sed 's/^/      /' >&2
done_step

# --- 8. qcow2 ----------------------------------------------------------------

step "qcow2: qemu-img convert"
qemu-img convert -f raw -O qcow2 "$DISK" "$WORK/image.qcow2"
mv "$WORK/image.qcow2" "$IMAGE" # last: its presence means "built"
finish
if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	chown -h "$SUDO_USER:" "$CACHE" "$CACHE/.build-image-gen2.lock" "$IMAGE" "$CACHE/$NAME.qcow2"
fi
done_step

say "built $NAME (recipe $recipe) in $((SECONDS - T0))s"
