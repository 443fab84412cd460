#!/usr/bin/env bash
# Builds the cumulo-tiny guest only from Debian packages (as root):
#   guest/out/vmlinuz            the Debian cloud kernel (boot it directly: the fast path under TCG)
#   guest/out/initrd.img         the whole guest: busybox, dropbear, modules, the rootfs/ scripts
#   guest/out/cumulo-tiny.qcow2  a bootable disk: MBR + extlinux + ext4 holding the two files above
# The result is cached: nothing is rebuilt while guest/ and the package versions are unchanged.
set -euo pipefail
cd "$(dirname "$0")"
OUT=${GUEST_OUT:-out}
CACHE=${GUEST_CACHE:-.cache}
KERNEL_PKG=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
[ -n "$KERNEL_PKG" ] || { apt-get update -qq; KERNEL_PKG=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/ {print $2; exit}'); }
PKGS=("$KERNEL_PKG" busybox-static dropbear-bin libc6 libcrypt1 libtomcrypt1 libtommath1 zlib1g libgmp10)
TOOLS=(kmod extlinux syslinux-common fdisk cpio qemu-utils xz-utils e2fsprogs)

stamp=$( (cat build.sh; find rootfs -type f | sort | xargs cat; for p in "${PKGS[@]}"; do
          apt-cache policy "$p" | awk '/Candidate/ {print $2}'; done) | sha1sum | cut -c1-16)
if [ -f "$OUT/.stamp" ] && [ "$(cat "$OUT/.stamp")" = "$stamp" ]; then
  echo "guest: up to date in $OUT"
  exit 0
fi
# the tools' output goes to the log; the terminal (fd 3) gets a line per step, and the log's
# last lines when a step fails
mkdir -p "$OUT"
LOG=${GUEST_LOG:-$OUT/build.log}
LOG=$(realpath "$LOG")
started=$SECONDS
exec 3>&2 >"$LOG" 2>&1
failed() {
  echo "guest: FAILED (line $1); the last lines of $LOG:" >&3
  tail -n 20 "$LOG" | sed 's/^/  | /' >&3
}
trap 'failed $LINENO' ERR
echo "guest: building the cumulo-tiny guest into $(realpath "$OUT") (log: $LOG)" >&3

missing=()
for t in "${TOOLS[@]}"; do dpkg-query -W -f='${Status}' "$t" 2>/dev/null | grep -q "install ok installed" || missing+=("$t"); done
if ((${#missing[@]})); then
  echo "guest: installing build tools ${missing[*]}" >&3
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

mkdir -p "$CACHE/debs" "$OUT"
echo "guest: fetching ${PKGS[*]}" >&3
(cd "$CACHE/debs" && apt-get download -qq "${PKGS[@]}" 2>/dev/null) || {
  apt-get update -qq && (cd "$CACHE/debs" && apt-get download -qq "${PKGS[@]}"); }

WORK=$(mktemp -d /tmp/cumulo-guest.XXXXXX)
MNT=""
cleanup() { [ -n "$MNT" ] && umount "$MNT" 2>/dev/null; rm -rf "$WORK"; }
trap cleanup EXIT
X=$WORK/extract
for p in "${PKGS[@]}"; do dpkg-deb -x "$(ls -t "$CACHE"/debs/"${p}"_*.deb | head -n1)" "$X"; done
KVER=$(ls "$X/lib/modules")

# the initramfs root
R=$WORK/root
mkdir -p "$R"/{bin,sbin,usr/bin,usr/sbin,lib/x86_64-linux-gnu,lib64,proc,sys,dev,run,tmp,mnt,root,var/log,www,etc}
cp -a rootfs/. "$R/"
cp "$X/bin/busybox" "$R/bin/busybox"
cp "$X/usr/sbin/dropbear" "$R/usr/sbin/"
for lib in libc.so.6 libcrypt.so.1 libtomcrypt.so.1 libtommath.so.1 libz.so.1 libgmp.so.10 libutil.so.1; do
  src=$(find "$X" -name "$lib" | head -n1)
  [ -n "$src" ] && cp -L "$src" "$R/lib/x86_64-linux-gnu/"
done
cp -L "$(find "$X" -name 'ld-linux-x86-64.so.2' | head -n1)" "$R/lib64/"
# kernel modules the guest loads, with their dependencies (depmod run on the extracted tree)
depmod -b "$X" "$KVER"
mods=$(cat rootfs/etc/modules)
want=$(for m in $mods; do modprobe -d "$X" -S "$KVER" --show-depends "$m" 2>/dev/null | awk '/^insmod/ {print $2}'; done | sort -u)
for f in $want; do
  rel=${f#"$X"}
  mkdir -p "$R$(dirname "$rel")"
  cp "$f" "$R$rel"
done
cp "$X/lib/modules/$KVER"/modules.{order,builtin,builtin.modinfo} "$R/lib/modules/$KVER/" 2>/dev/null || true
depmod -b "$R" "$KVER"
(cd "$R" && find . | cpio -o -H newc --quiet | gzip -9) > "$WORK/initrd.img"
cp "$X/boot/vmlinuz-$KVER" "$WORK/vmlinuz"

# the bootable disk: MBR, one ext4 partition at 1 MiB holding the kernel, initrd and extlinux
D=$WORK/disk
mkdir -p "$D/boot/extlinux"
cp "$WORK/vmlinuz" "$WORK/initrd.img" "$D/boot/"
cat > "$D/boot/extlinux/extlinux.conf" <<CONF
SERIAL 0 115200
DEFAULT cumulo
TIMEOUT 1
LABEL cumulo
  LINUX /boot/vmlinuz
  INITRD /boot/initrd.img
  APPEND console=ttyS0 quiet panic=5
CONF
RAW=$WORK/disk.raw
truncate -s 64M "$RAW"
echo 'start=2048, type=83, bootable' | sfdisk -q "$RAW"
# syslinux 6.04 reads ext4 only without the 64bit and metadata_csum features
mkfs.ext4 -q -F -L cumulo-root -b 4096 -O ^64bit,^metadata_csum -E offset=1048576 -d "$D" "$RAW" 63M
MNT=$WORK/mnt
mkdir -p "$MNT"
mount -o loop,offset=1048576 "$RAW" "$MNT"
# mkfs -d leaves an all-zero block as a hole, and syslinux cannot read holes ("Loading
# /boot/initrd.img failed: I/O error" when the initrd's last byte happens to be 0): the files it
# loads are written again with every block allocated
for f in vmlinuz initrd.img; do cp --sparse=never "$D/boot/$f" "$MNT/boot/$f"; done
sync
extlinux --install "$MNT/boot/extlinux" >/dev/null
umount "$MNT"
MNT=""
dd if=/usr/lib/EXTLINUX/mbr.bin of="$RAW" bs=440 count=1 conv=notrunc status=none
qemu-img convert -O qcow2 "$RAW" "$WORK/cumulo-tiny.qcow2"

mv "$WORK/vmlinuz" "$WORK/initrd.img" "$WORK/cumulo-tiny.qcow2" "$OUT/"
echo "$KVER" > "$OUT/kernel-version"
echo "$stamp" > "$OUT/.stamp"
ls -l "$OUT" | awk 'NR>1 {print "guest: " $9 " " $5 " bytes"}'
echo "guest: built in $((SECONDS - started)) s: vmlinuz, initrd.img, cumulo-tiny.qcow2" >&3
