#!/usr/bin/env bash
# Build the Debian 12 (bookworm) VM image the qemu lab provider boots.
#
#   sudo scripts/build-image.sh               build (or reuse) the image
#   scripts/build-image.sh --print-path       print the image path; exit 0 when
#                                             it is built, 1 when not (no root)
#
# The image is made from Debian's packages only: debootstrap (minbase) of a
# small systemd + openssh-server + cloud-init system plus Debian's kernel
# (linux-image-amd64), packed as a raw ext4 file system (mke2fs -d, no loop
# mount) and converted to qcow2. The VMs boot it directly with
# -kernel/-initrd/-append 'root=/dev/vda', so the disk has no partition table
# and no boot loader; the kernel and initrd are stored next to the image.
#
# Output, in ${CALCLAB_CACHE:-$HOME/.cache/calclab} (never inside the repo):
#   debian-12-<recipe>.qcow2     the root file system (ext4 on the whole disk)
#   debian-12-<recipe>.vmlinuz   its kernel
#   debian-12-<recipe>.initrd    its initrd (virtio + ext4 modules only)
#   debian-12.{qcow2,vmlinuz,initrd}  symlinks to the newest build
# <recipe> is a hash of this script and the package list: the image is rebuilt
# only when one of them changes; running the script again is a no-op. Older
# builds are kept (running labs' disks are overlays on them); the script lists
# them so they can be removed by hand.
#
# Under sudo, the cache is the invoking user's (~$SUDO_USER/.cache/calclab) and
# the files are handed to that user, so `lab up` run without root finds them.
#
# The Debian mirror is the one this machine's apt already uses (read from
# /etc/apt/sources.list and /etc/apt/sources.list.d/*); override it with
# CALCLAB_DEBIAN_MIRROR=http://.../debian. Needs root (debootstrap, chroot);
# installs debootstrap, qemu-utils and e2fsprogs with apt-get when missing.
set -euo pipefail

SUITE=bookworm
NAME=debian-12
# Packages of the image. python3-cffi-backend is named because debootstrap
# does not resolve that virtual dependency of cloud-init's python modules.
PACKAGES=(
	systemd-sysv udev kmod iproute2 iputils-ping
	openssh-server sudo
	cloud-init python3-cffi-backend
	linux-image-amd64 initramfs-tools
)
# Modules the initrd carries: enough to mount root=/dev/vda (ext4 on virtio).
INITRD_MODULES=(virtio_pci virtio_blk virtio_net ext4 crc32c_generic)
# Module trees dropped from the image (hardware a QEMU VM does not have).
PRUNE_MODULES=(
	drivers/gpu drivers/media drivers/infiniband drivers/staging
	drivers/net/wireless drivers/net/ethernet drivers/bluetooth drivers/iio
	drivers/usb drivers/scsi drivers/hid drivers/input/touchscreen drivers/isdn
	drivers/mmc drivers/mtd drivers/nfc drivers/platform drivers/thunderbolt
	drivers/comedi drivers/hwmon drivers/target drivers/md drivers/video drivers/ata
	drivers/net/usb drivers/net/can drivers/net/wwan drivers/net/ieee802154
	fs/xfs fs/nfs fs/nfsd fs/btrfs fs/ocfs2 fs/smb fs/f2fs fs/ceph fs/gfs2 fs/afs
	fs/ubifs fs/dlm fs/jfs fs/reiserfs fs/nilfs2
	sound net/wireless net/mac80211 net/bluetooth net/sunrpc
)
# Size of the root file system in the base image; each VM's overlay is
# disk_gb large and cloud-init grows the file system to it on first boot.
FS_SIZE=2G

SCRIPT=$(readlink -f "${BASH_SOURCE[0]}")

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- where ----------------------------------------------------------------

if [[ -z ${CALCLAB_CACHE:-} ]]; then
	home=$HOME
	if [[ $EUID -eq 0 && -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
		home=$(getent passwd "$SUDO_USER" | cut -d: -f6)
	fi
	CALCLAB_CACHE=$home/.cache/calclab
fi
CACHE=$CALCLAB_CACHE

recipe=$({
	cat "$SCRIPT"
	printf '%s\n' "${PACKAGES[@]}"
} | sha256sum | cut -c1-12)
BASE=$CACHE/$NAME-$recipe
IMAGE=$BASE.qcow2
KERNEL=$BASE.vmlinuz
INITRD=$BASE.initrd

built() { [[ -s $IMAGE && -s $KERNEL && -s $INITRD ]]; }

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

# --- progress --------------------------------------------------------------

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

print_paths() {
	echo "image:  $IMAGE ($(du -h "$IMAGE" | cut -f1) on disk)"
	echo "kernel: $KERNEL"
	echo "initrd: $INITRD"
	local old
	old=$(find "$CACHE" -maxdepth 1 -name "$NAME-*.qcow2" ! -name "$(basename "$IMAGE")" -printf '  %p\n' 2>/dev/null || true)
	if [[ -n $old ]]; then
		echo "older images (remove by hand once no lab uses them, with their .vmlinuz and .initrd):"
		echo "$old"
	fi
}

link_latest() {
	local ext
	for ext in qcow2 vmlinuz initrd; do
		ln -sfn "$(basename "$BASE").$ext" "$CACHE/$NAME.$ext"
	done
}

if built; then
	say "image is up to date (recipe $recipe)"
	if [[ -w $CACHE ]]; then link_latest; fi
	print_paths
	exit 0
fi

[[ $EUID -eq 0 ]] || die "building the image needs root (debootstrap, chroot): run 'sudo $0' (--print-path does not)"

# --- 1. tools --------------------------------------------------------------

step "tools: debootstrap, qemu-img, mke2fs"
need=()
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mke2fs >/dev/null || need+=(e2fsprogs)
[[ -e /usr/share/keyrings/debian-archive-keyring.gpg ]] || need+=(debian-archive-keyring)
if ((${#need[@]})); then
	say "      installing ${need[*]}"
	apt-get update -q
	DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
fi
done_step

# --- 2. mirror -------------------------------------------------------------

# apt_mirror prints the first URI of this machine's apt sources that serves
# $SUITE (deb822 .sources files and one-line .list files).
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

# Under sudo, the cache (and any missing parent such as ~/.cache) is made
# by the invoking user, so root does not end up owning it.
if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	sudo -u "$SUDO_USER" mkdir -p "$CACHE" 2>/dev/null || mkdir -p "$CACHE"
else
	mkdir -p "$CACHE"
fi
exec 9>>"$CACHE/.build-image.lock"
flock -n 9 || {
	say "another build-image.sh is running; waiting for it"
	flock 9
}
if built; then # the other build made it
	say "image is up to date (recipe $recipe)"
	link_latest
	print_paths
	exit 0
fi

WORK=$CACHE/.build-$recipe
ROOT=$WORK/root
cleanup() {
	local m
	for m in "$ROOT/proc" "$ROOT/sys" "$ROOT/dev/pts" "$ROOT/dev"; do
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
# The kernel's postinst builds a generic initrd here; step 4 rebuilds it
# small (MODULES=list).
if ! debootstrap --variant=minbase --include="$include" "$SUITE" "$ROOT" "$MIRROR" >"$WORK/debootstrap.log" 2>&1; then
	tail -n 30 "$WORK/debootstrap.log" >&2
	cp "$WORK/debootstrap.log" "$CACHE/debootstrap-failed.log" 2>/dev/null || true
	die "debootstrap failed (full log: $CACHE/debootstrap-failed.log)"
fi
done_step

# --- 4. configure ----------------------------------------------------------

step "configure: cloud-init, serial console, fstab, journald, initrd"
mount -t proc proc "$ROOT/proc"
mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"

# cloud-init reads the NoCloud seed ISO (label cidata) the driver attaches.
# Only the modules a lab VM needs run (each costs seconds under TCG); the
# lab has no internet, so nothing touches apt, and there is no locale
# package (the locale module would fail).
cat >"$ROOT/etc/cloud/cloud.cfg.d/99_calclab.cfg" <<'EOF'
# calclab: the lab attaches a NoCloud seed ISO (volume label cidata).
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
# cloud-init renders the network-config for systemd-networkd (the image has
# no ifupdown or netplan), so networkd must run. Boot goes on once any link
# is up (cloud-init's network stage waits for this).
chroot "$ROOT" systemctl enable systemd-networkd.service >/dev/null 2>&1
mkdir -p "$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d"
printf '[Service]\nExecStart=\nExecStart=/lib/systemd/systemd-networkd-wait-online --any --timeout=60\n' \
	>"$ROOT/etc/systemd/system/systemd-networkd-wait-online.service.d/10-calclab.conf"
# Nothing to update without internet.
chroot "$ROOT" systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer >/dev/null 2>&1 || true
echo "/dev/vda / ext4 defaults,errors=remount-ro 0 1" >"$ROOT/etc/fstab"
# A placeholder: cloud-init sets the node's name from its seed.
echo "calclab-node" >"$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\tcalclab-node\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$ROOT/etc/hosts"
# Serial console login (the VMs have no display; -serial file: logs it).
ln -sf /lib/systemd/system/serial-getty@.service \
	"$ROOT/etc/systemd/system/getty.target.wants/serial-getty@ttyS0.service"
# Persistent journal, so a failed boot can be read after the fact.
mkdir -p "$ROOT/var/log/journal" "$ROOT/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\n' >"$ROOT/etc/systemd/journald.conf.d/10-calclab.conf"
# No root password: root cannot log in with one (the lab logs in as the
# ssh_user with its key and uses sudo).
chroot "$ROOT" passwd -l root >/dev/null
# Per-VM identity is made on first boot: machine-id by systemd, SSH host
# keys by cloud-init.
: >"$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id" "$ROOT"/etc/ssh/ssh_host_*
# A small initrd with just the modules to mount the root disk.
printf 'MODULES=list\nCOMPRESS=gzip\n' >"$ROOT/etc/initramfs-tools/conf.d/calclab.conf"
printf '%s\n' "${INITRD_MODULES[@]}" >"$ROOT/etc/initramfs-tools/modules"
kver=$(basename "$(find "$ROOT/lib/modules" -mindepth 1 -maxdepth 1 -type d | sort -V | tail -n1)")
[[ -n $kver ]] || die "no kernel modules in the image (did linux-image-amd64 install?)"
chroot "$ROOT" update-initramfs -u -k "$kver" >"$WORK/initramfs.log" 2>&1 ||
	{
		cat "$WORK/initramfs.log" >&2
		die "update-initramfs failed"
	}
umount "$ROOT/dev" "$ROOT/sys" "$ROOT/proc"
done_step

# --- 5. slim ----------------------------------------------------------------

step "slim: drop unneeded kernel modules, docs, apt caches"
for d in "${PRUNE_MODULES[@]}"; do
	rm -rf "$ROOT/lib/modules/$kver/kernel/$d"
done
chroot "$ROOT" depmod -a "$kver"
rm -rf "$ROOT"/usr/share/doc/* "$ROOT"/usr/share/man/* "$ROOT"/usr/share/info/* \
	"$ROOT"/var/cache/apt/*.bin "$ROOT"/var/cache/apt/archives/*.deb \
	"$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* \
	"$ROOT"/tmp/* "$ROOT"/var/tmp/*
find "$ROOT/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name 'locale.alias' -exec rm -rf {} +
say "      root file system: $(du -sh "$ROOT" | cut -f1), kernel $kver"
done_step

# --- 6. kernel ---------------------------------------------------------------

step "kernel: copy vmlinuz-$kver and initrd.img-$kver next to the image"
cp "$ROOT/boot/vmlinuz-$kver" "$WORK/vmlinuz"
cp "$ROOT/boot/initrd.img-$kver" "$WORK/initrd"
say "      vmlinuz $(du -h "$WORK/vmlinuz" | cut -f1), initrd $(du -h "$WORK/initrd" | cut -f1)"
done_step

# --- 7. file system ------------------------------------------------------------

step "file system: ext4 ($FS_SIZE) from the tree with mke2fs -d"
truncate -s "$FS_SIZE" "$WORK/root.raw"
mke2fs -q -F -t ext4 -L calclab-root -E root_owner=0:0 -d "$ROOT" "$WORK/root.raw"
done_step

# --- 8. qcow2 --------------------------------------------------------------------

step "qcow2: qemu-img convert"
qemu-img convert -f raw -O qcow2 "$WORK/root.raw" "$WORK/image.qcow2"
mv "$WORK/vmlinuz" "$KERNEL"
mv "$WORK/initrd" "$INITRD"
mv "$WORK/image.qcow2" "$IMAGE" # last: its presence means "built"
link_latest
if [[ -n ${SUDO_USER:-} && $SUDO_USER != root ]]; then
	chown -h "$SUDO_USER:" "$CACHE" "$CACHE/.build-image.lock" "$IMAGE" "$KERNEL" "$INITRD" "$CACHE/$NAME".{qcow2,vmlinuz,initrd}
fi
done_step

say "built $NAME (recipe $recipe) in $((SECONDS - T0))s"
print_paths
