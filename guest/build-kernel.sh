#!/usr/bin/env bash
# Builds the small guest kernel and its initramfs (as root), for the cumulo-tiny-fast image:
#   guest/out/vmlinux-small      Linux from Debian's linux-source-6.1 with small-kernel.config: only
#                                what the guest uses, all built in; an uncompressed ELF with a PVH
#                                entry note, so QEMU's -kernel starts it in 32-bit PVH mode (no
#                                real-mode setup, no decompression)
#   guest/out/initrd-small.img   guest/out/initrd.img without the kernel modules (uncompressed)
#
#   guest/build-kernel.sh               build now when stale (a few minutes on 2 cores)
#   guest/build-kernel.sh --background  when stale, build detached (nice, logged to
#                                       guest/out/kernel-build.log) and return at once; the
#                                       running cloud registers the images when they appear
#
# The kernel is cached by its inputs (this script, small-kernel.config, the linux-source-6.1
# version) in $GUEST_KERNEL_CACHE (/var/cache/cumulo/guest-kernel), outside the tree, so a fresh
# clone on the same machine does not build it again.  Needs guest/build.sh's output first.
set -euo pipefail
SELF=$(realpath "$0")
cd "$(dirname "$SELF")"
OUT=${GUEST_OUT:-out}
KCACHE=${GUEST_KERNEL_CACHE:-/var/cache/cumulo/guest-kernel}
SRC_PKG=linux-source-6.1
TOOLS=("$SRC_PKG" flex bison bc libelf-dev libssl-dev cpio make gcc)
# what the guest's init needs, checked in the configuration make olddefconfig settles on
NEED=(PVH VIRTIO_PCI VIRTIO_NET VIRTIO_BLK VIRTIO_CONSOLE SCSI_VIRTIO BLK_DEV_SD HW_RANDOM_VIRTIO
      VIRTIO_BALLOON SERIAL_8250_CONSOLE ACPI ACPI_BUTTON INPUT_EVDEV EXT4_FS ISO9660_FS JOLIET
      DEVTMPFS UNIX98_PTYS PACKET INET HOTPLUG_PCI_ACPI HOTPLUG_PCI_PCIE BLK_DEV_INITRD BINFMT_SCRIPT)

[ -f "$OUT/.stamp" ] || { echo "guest: build the guest first (guest/build.sh)" >&2; exit 1; }
version() { apt-cache policy "$SRC_PKG" | awk '/Candidate/ {print $2}'; }
ver=$(version)
[ -n "$ver" ] && [ "$ver" != "(none)" ] || { apt-get update -qq; ver=$(version); }
kstamp=$( (cat build-kernel.sh small-kernel.config; echo "$ver") | sha1sum | cut -c1-16)
# the initramfs follows the guest build: a new initrd.img means a new initrd-small.img
stamp="$kstamp-$(cat "$OUT/.stamp")"
if [ -f "$OUT/.stamp-small" ] && [ "$(cat "$OUT/.stamp-small")" = "$stamp" ]; then
  echo "guest: small kernel up to date in $OUT"
  exit 0
fi
LOG=$(realpath -m "$OUT/kernel-build.log")

if [ "${1:-}" = --background ]; then
  if [ -f "$KCACHE/$kstamp/vmlinux" ]; then  # cached: quick enough to do now
    exec "$SELF"
  fi
  echo "guest: building the small kernel in the background (log: $LOG)"
  setsid nohup nice -n 10 "$SELF" </dev/null >/dev/null 2>&1 &
  exit 0
fi

# one build at a time: a second caller waits for the first and then finds it up to date
exec 9>"$OUT/.kernel-build.lock"
if ! flock -n 9; then
  echo "guest: another small-kernel build is running; waiting for it (log: $LOG)"
  flock 9
  [ "$(cat "$OUT/.stamp-small" 2>/dev/null)" = "$stamp" ] && exit 0
fi

started=$SECONDS
exec 3>&2 >"$LOG" 2>&1
failed() {
  echo "guest: small kernel FAILED (line $1); the last lines of $LOG:" >&3
  tail -n 20 "$LOG" | sed 's/^/  | /' >&3
}
trap 'failed $LINENO' ERR
WORK=$(mktemp -d /var/tmp/cumulo-kernel.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

if [ ! -f "$KCACHE/$kstamp/vmlinux" ]; then
  missing=()
  for t in "${TOOLS[@]}"; do dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q "install ok installed" || missing+=("$t"); done
  if ((${#missing[@]})); then
    echo "guest: installing ${missing[*]}" >&3
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      -o DPkg::Lock::Timeout=600 "${missing[@]}" >/dev/null
  fi
  echo "guest: building the small kernel from $SRC_PKG $ver (a few minutes; log: $LOG)" >&3
  tar -xaf /usr/src/"$SRC_PKG".tar.xz -C "$WORK"
  K=$WORK/$SRC_PKG
  cp small-kernel.config "$K/.config"
  make -C "$K" -s olddefconfig
  for opt in "${NEED[@]}"; do
    grep -qx "CONFIG_$opt=y" "$K/.config" || { echo "CONFIG_$opt is not =y after olddefconfig"; false; }
  done
  when=$(date -u -r /usr/src/"$SRC_PKG".tar.xz '+%Y-%m-%d %H:%M:%S UTC')  # the same for one version
  make -C "$K" -j"$(nproc)" -s KBUILD_BUILD_TIMESTAMP="$when" KBUILD_BUILD_USER=cumulo KBUILD_BUILD_HOST=guest vmlinux
  mkdir -p "$KCACHE/$kstamp.tmp"
  strip --strip-debug -o "$KCACHE/$kstamp.tmp/vmlinux" "$K/vmlinux"
  cp "$K/.config" "$KCACHE/$kstamp.tmp/config"
  rm -rf "$KCACHE/$kstamp"
  mv "$KCACHE/$kstamp.tmp" "$KCACHE/$kstamp"
  rm -rf "$K"
fi

# the initramfs: the guest's, without modules (everything is built in) and nothing to load
R=$WORK/root
mkdir -p "$R"
(cd "$R" && gzip -dc | cpio -id --quiet) < "$(realpath "$OUT/initrd.img")"
rm -rf "$R/lib/modules"
: > "$R/etc/modules"
(cd "$R" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) > "$WORK/initrd-small.img"

cp "$KCACHE/$kstamp/vmlinux" "$WORK/vmlinux-small"
mv "$WORK/vmlinux-small" "$WORK/initrd-small.img" "$OUT/"
echo "$stamp" > "$OUT/.stamp-small"
ls -l "$OUT"/vmlinux-small "$OUT"/initrd-small.img | awk '{print "guest: " $9 " " $5 " bytes"}'
echo "guest: small kernel ready in $((SECONDS - started)) s: vmlinux-small, initrd-small.img" >&3
