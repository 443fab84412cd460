"""The format inspection of image data (cumulo.core.format_inspector): each format recognised from
small files made here (with qemu-img, mkisofs or struct), qemu-img's own reading as the oracle for
virtual sizes, and every unsafe or mismatched kind refused with a message that names the problem.

``sample(name, folder)`` builds the named file; the functional tests upload the same files."""

from __future__ import annotations

import json
import random
import shutil
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from cumulo.core.format_inspector import KIB, MIB, ImageRefused, Inspection, inspect_file, qemu_format

HAVE_TOOLS = bool(shutil.which("qemu-img") and (shutil.which("mkisofs") or shutil.which("genisoimage")))
needs_tools = pytest.mark.skipif(not HAVE_TOOLS, reason="qemu-img and mkisofs are needed to build the samples")


def qemu_img(*args: str, cwd: Path) -> None:
    subprocess.run(["qemu-img", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def iso(folder: Path, name: str, *extra: str) -> Path:
    out = folder / name
    tool = shutil.which("mkisofs") or "genisoimage"
    src = folder / "iso-content.txt"
    src.write_text("cumulo\n")
    subprocess.run([tool, "-quiet", *extra, "-V", "cumulo", "-o", str(out), str(src)], check=True, timeout=60)
    return out


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def patch(path: Path, offset: int, data: bytes) -> Path:
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(data)
    return path


def qcow2(folder: Path, name: str, *opts: str) -> Path:
    qemu_img("create", "-q", "-f", "qcow2", *opts, name, "10M", cwd=folder)
    return folder / name


def vmdk(folder: Path, name: str, subformat: str) -> Path:
    qemu_img("create", "-q", "-f", "vmdk", "-o", f"subformat={subformat}", name, "10M", cwd=folder)
    return folder / name


def vmdk_with_footer(folder: Path, name: str) -> Path:
    """A monolithicSparse VMDK whose grain directory is "at the end": a footer marker, a copy of
    the header and an end-of-stream marker follow the data (as VMware's tools write them)."""
    path = vmdk(folder, name, "monolithicSparse")
    header = path.read_bytes()[:512]
    with open(path, "r+b") as f:
        f.seek(56)
        f.write(struct.pack("<Q", 0xFFFFFFFFFFFFFFFF))
        f.seek(0, 2)
        f.write(struct.pack("<QII", 0, 0, 3) + bytes(496))
        f.write(header)
        f.write(bytes(512))
    return path


def vmdk_extent_elsewhere(folder: Path, name: str) -> Path:
    """monolithicSparse whose embedded descriptor names /etc/hosts as its extent."""
    path = vmdk(folder, name, "monolithicSparse")
    data = bytearray(path.read_bytes())
    own = f'"{name}"'.encode()
    at = data.index(own, 512)
    data[at:at + len(own)] = b'"/etc/hosts"'.ljust(len(own), b" ")
    path.write_bytes(bytes(data))
    return path


def flat_descriptor(folder: Path, name: str, extent: str) -> Path:
    path = vmdk(folder, name, "monolithicFlat")
    (folder / name.replace(".vmdk", "-flat.vmdk")).unlink()
    text = path.read_text().replace(name.replace(".vmdk", "-flat.vmdk"), extent)
    path.write_text(text)
    return path


def whole_disk(folder: Path, name: str) -> Path:
    """A raw disk with an MBR holding one Linux partition."""
    data = bytearray(1 * MIB)
    data[446:462] = struct.pack("<B3sB3sII", 0x80, b"\x00\x02\x00", 0x83, b"\xff\xff\xff", 2048, 0)
    data[510:512] = b"\x55\xaa"
    (folder / name).write_bytes(bytes(data))
    return folder / name


def hybrid_iso(folder: Path, name: str) -> Path:
    """An ISO with a partition table in its system area (isohybrid): still an ISO."""
    path = iso(folder, name)
    mbr = bytearray(512)
    mbr[446:462] = struct.pack("<B3sB3sII", 0x80, b"\x00\x02\x00", 0x17, b"\xff\xff\xff", 0, 175)
    mbr[510:512] = b"\x55\xaa"
    return patch(path, 0, bytes(mbr))


def iso_with_qcow2_header(folder: Path, name: str) -> Path:
    path = iso(folder, name)
    header = qcow2(folder, "tmp-header.qcow2").read_bytes()[:32 * KIB]
    return patch(path, 0, header)


def random_data(folder: Path, name: str, size: int = 300 * KIB) -> Path:
    data = bytearray(random.Random(7).randbytes(size))
    data[510:512] = b"\x00\x00"  # no accidental boot signature
    (folder / name).write_bytes(bytes(data))
    return folder / name


def vhd_differencing(folder: Path, name: str) -> Path:
    qemu_img("create", "-q", "-f", "vpc", name, "10M", cwd=folder)
    return patch(folder / name, 60, struct.pack(">I", 4))


# name -> (the disk_format it claims, how to build it, None when accepted / what the refusal says)
Builder = Callable[[Path, str], Path]
GOOD: dict[str, tuple[str, Builder]] = {
    "standard-qcow2v3.qcow2": ("qcow2", lambda d, n: qcow2(d, n)),
    "qcow2-v2.qcow2": ("qcow2", lambda d, n: qcow2(d, n, "-o", "compat=0.10")),
    "raw-blank.raw": ("raw", lambda d, n: write(d / n, bytes(MIB))),
    "raw-random.raw": ("raw", random_data),
    "raw-empty.raw": ("raw", lambda d, n: write(d / n, b"")),
    "whole-disk.raw": ("raw", whole_disk),
    "standard-iso9660.iso": ("iso", lambda d, n: iso(d, n)),
    "standard-udf.iso": ("iso", lambda d, n: iso(d, n, "-udf")),
    "hybrid.iso": ("iso", hybrid_iso),
    "vmdk-monolithicSparse.vmdk": ("vmdk", lambda d, n: vmdk(d, n, "monolithicSparse")),
    "vmdk-streamOptimized.vmdk": ("vmdk", lambda d, n: vmdk(d, n, "streamOptimized")),
    "vmdk-sparse-with-footer.vmdk": ("vmdk", vmdk_with_footer),
    "standard.vhd": ("vhd", lambda d, n: qemu_img("create", "-q", "-f", "vpc", n, "10M", cwd=d) or d / n),
    "standard.vhdx": ("vhdx", lambda d, n: qemu_img("create", "-q", "-f", "vhdx", n, "10M", cwd=d) or d / n),
    "standard.vdi": ("vdi", lambda d, n: qemu_img("create", "-q", "-f", "vdi", n, "10M", cwd=d) or d / n),
}
BAD: dict[str, tuple[str, Builder, str]] = {
    "qcow-with-backing.qcow2": ("qcow2", lambda d, n: qcow2(d, n, "-F", "raw", "-b", "/etc/hosts"),
                                "qcow2 image with a backing file ('/etc/hosts')"),
    "qcow-with-datafile.qcow2": ("qcow2", lambda d, n: qcow2(d, n, "-o", "data_file=data-file,data_file_raw=on"),
                                 "qcow2 image with an external data file"),
    "qcow2-unknown-feature.qcow2": ("qcow2", lambda d, n: patch(qcow2(d, n), 72, struct.pack(">Q", 1 << 40)),
                                    "unknown incompatible features (0x10000000000)"),
    "qcow-version-1.qcow2": ("qcow2", lambda d, n: patch(qcow2(d, n), 4, struct.pack(">I", 1)),
                             "qcow version 1 image"),
    "standard.qed": ("qcow2", lambda d, n: qemu_img("create", "-q", "-f", "qed", n, "10M", cwd=d) or d / n,
                     "QED image"),
    "vmdk-monolithicFlat.vmdk": ("vmdk", lambda d, n: flat_descriptor(d, n, "vmdk-monolithicFlat-flat.vmdk"),
                                 "VMDK of type 'monolithicFlat'"),
    "vmdk-monolithicFlat-leak.vmdk": ("vmdk", lambda d, n: flat_descriptor(d, n, "/etc/hosts"),
                                      "VMDK of type 'monolithicFlat'"),
    "vmdk-sparse-with-url-backing.vmdk": ("vmdk", vmdk_extent_elsewhere,
                                          "descriptor names an extent in another file"),
    "vmdk-capacity-zero.vmdk": ("vmdk", lambda d, n: patch(vmdk(d, n, "monolithicSparse"), 12, bytes(8)),
                                "capacity 0"),
    "vmdk-cowd.vmdk": ("vmdk", lambda d, n: patch(random_data(d, n), 0, b"COWD"), "COWD"),
    "iso-with-qcow2-in-system.iso": ("iso", iso_with_qcow2_header, "several disk formats at once (iso, qcow2)"),
    "vhd-differencing.vhd": ("vhd", vhd_differencing, "differencing VHD"),
    "raw-claimed-qcow2.qcow2": ("qcow2", random_data, "disk_format is qcow2 but its data matches no known disk"),
    "qcow2-claimed-raw.raw": ("raw", lambda d, n: qcow2(d, n), "disk_format is raw but its data is in qcow2 format"),
    "vmdk-claimed-raw.raw": ("raw", lambda d, n: vmdk(d, n, "streamOptimized"), "its data is in vmdk format"),
    "iso-claimed-qcow2.qcow2": ("qcow2", lambda d, n: iso(d, n), "its data is in iso format"),
    "vhdx-claimed-vhd.vhd": ("vhd", lambda d, n: qemu_img("create", "-q", "-f", "vhdx", n, "10M", cwd=d) or d / n,
                             "its data is in vhdx format"),
    "text-claimed-iso.iso": ("iso", lambda d, n: write(d / n, b"hello\n" * 100),
                             "matches no known disk format"),
    "luks-claimed-raw.raw": ("raw", lambda d, n: patch(random_data(d, n), 0, b"LUKS\xba\xbe\x00\x01"), "LUKS"),
}


def sample(name: str, folder: Path) -> tuple[Path, str]:
    """Build the sample ``name`` in ``folder``: (its path, the disk_format it claims)."""
    folder.mkdir(parents=True, exist_ok=True)
    if name in GOOD:
        fmt, build = GOOD[name]
    else:
        fmt, build, _ = BAD[name]
    path = build(folder, name)
    return Path(path), fmt


def stream(path: Path, claimed: str, sizes: Callable[[], int] = lambda: 64 * KIB, **kw: object) -> Inspection:
    inspection = Inspection(claimed, **kw)  # type: ignore[arg-type]
    data = path.read_bytes()
    pos = 0
    while pos < len(data):
        n = sizes()
        inspection.feed(data[pos:pos + n])
        pos += n
    inspection.finish()
    return inspection


def qemu_virtual_size(path: Path, claimed: str) -> int:
    out = subprocess.run(["qemu-img", "info", "--output=json", "-f", qemu_format(claimed), str(path)],
                         capture_output=True, check=True, timeout=30).stdout
    return int(json.loads(out)["virtual-size"])


@needs_tools
@pytest.mark.parametrize("name", sorted(GOOD))
def test_each_format_is_recognised_with_qemu_imgs_virtual_size(name: str, tmp_path: Path) -> None:
    path, claimed = sample(name, tmp_path)
    verdict = stream(path, claimed).verdict
    assert verdict is not None
    assert verdict.format == ("gpt" if name == "whole-disk.raw" else claimed)
    assert verdict.size == path.stat().st_size
    assert verdict.virtual_size == qemu_virtual_size(path, claimed)
    assert inspect_file(path, claimed) == verdict  # reading the headers of a file says the same


@needs_tools
@pytest.mark.parametrize("name", sorted(BAD))
def test_each_unsafe_or_mismatched_kind_is_refused_saying_why(name: str, tmp_path: Path) -> None:
    path, claimed = sample(name, tmp_path)
    expected = BAD[name][2]
    with pytest.raises(ImageRefused, match=expected.replace("(", r"\(").replace(")", r"\)")):
        stream(path, claimed)
    with pytest.raises(ImageRefused, match=expected.replace("(", r"\(").replace(")", r"\)")):
        inspect_file(path, claimed)


@needs_tools
@pytest.mark.parametrize("name", sorted(set(GOOD) | set(BAD)))
def test_the_verdict_does_not_depend_on_how_the_stream_is_cut(name: str, tmp_path: Path) -> None:
    path, claimed = sample(name, tmp_path)

    def outcome(sizes: Callable[[], int]) -> str:
        try:
            return repr(stream(path, claimed, sizes).verdict)
        except ImageRefused as exc:
            return f"refused: {exc}"

    reference = outcome(lambda: 64 * KIB)
    rng = random.Random(name)
    for _ in range(3):
        assert outcome(lambda: rng.choice([1, 3, 511, 513, 4096, 100_003])) == reference


@needs_tools
@pytest.mark.parametrize("name", ["qcow-with-backing.qcow2", "qcow-with-datafile.qcow2",
                                  "vmdk-sparse-with-url-backing.vmdk", "qcow2-claimed-raw.raw"])
def test_refusal_comes_with_the_first_chunk_of_a_large_upload(name: str, tmp_path: Path) -> None:
    """A bad header is refused while the data streams: the rest (here 64 MiB more) is never needed."""
    path, claimed = sample(name, tmp_path)
    head = path.read_bytes()
    inspection = Inspection(claimed)
    with pytest.raises(ImageRefused):
        inspection.feed(head[:64 * KIB] if len(head) >= 64 * KIB else head + bytes(64 * KIB - len(head)))
        for _ in range(64):
            inspection.feed(bytes(MIB))
    assert inspection.position <= 64 * KIB


def test_memory_stays_bounded_and_inspection_stops_working_once_decided() -> None:
    inspection = Inspection("raw")
    block = bytes(4 * MIB)
    for _ in range(32):  # 128 MiB of zeros
        inspection.feed(block)
    assert inspection.done
    held = sum(len(r.data) for f in inspection.formats for r in f.regions.values()) + len(inspection.tail)
    assert held < 2 * MIB
    verdict = inspection.finish()
    assert (verdict.format, verdict.virtual_size, verdict.size) == ("raw", 128 * MIB, 128 * MIB)


@needs_tools
def test_a_descriptor_file_longer_than_its_first_sector_is_still_read(tmp_path: Path) -> None:
    path = flat_descriptor(tmp_path, "long.vmdk", "long-flat.vmdk")
    path.write_text(path.read_text() + "# padding\n" * 200)
    with pytest.raises(ImageRefused, match="monolithicFlat"):
        stream(path, "raw", lambda: 100)


@needs_tools
def test_format_match_can_be_relaxed_but_safety_cannot(tmp_path: Path) -> None:
    good, _ = sample("standard-qcow2v3.qcow2", tmp_path)
    assert stream(good, "raw", require_match=False).verdict.format == "qcow2"  # type: ignore[union-attr]
    bad, _ = sample("qcow-with-backing.qcow2", tmp_path)
    with pytest.raises(ImageRefused, match="backing file"):
        stream(bad, "raw", require_match=False)


@needs_tools
def test_wrapping_containers_skip_the_match_but_not_the_safety_checks(tmp_path: Path) -> None:
    """Glance inspects only bare data; an OVA's tar is no disk format, but a qcow2 with a
    backing file is refused whatever the container says."""
    tar = tmp_path / "appliance.ova"
    subprocess.run(["tar", "cf", str(tar), "-C", str(tmp_path), "."], check=True, timeout=30)
    assert stream(tar, "vmdk", container_format="ova").verdict.format == "raw"  # type: ignore[union-attr]
    with pytest.raises(ImageRefused, match="disk_format is vmdk"):
        stream(tar, "vmdk", container_format="bare")
    bad, _ = sample("qcow-with-backing.qcow2", tmp_path)
    with pytest.raises(ImageRefused, match="backing file"):
        stream(bad, "qcow2", container_format="ovf")


@pytest.mark.parametrize("claimed", ["aki", "ari", "ami"])
def test_kernels_and_ramdisks_are_raw_data_for_the_amazon_formats(claimed: str, tmp_path: Path) -> None:
    kernel = bytearray(random.Random(1).randbytes(200_000))
    kernel[446:510] = b"\xff" * 64  # a bzImage's boot sector: the boot signature over no partition table
    kernel[510:512] = b"\x55\xaa"
    path = tmp_path / "vmlinuz"
    path.write_bytes(bytes(kernel))
    assert stream(path, claimed).verdict.format == "raw"  # type: ignore[union-attr]
    qcow = tmp_path / "x.qcow2"
    qcow.write_bytes(b"QFI\xfb" + struct.pack(">I", 3) + bytes(200))
    with pytest.raises(ImageRefused, match=f"disk_format is {claimed}"):
        stream(qcow, claimed)


def test_fat_boot_sectors_and_broken_tables_are_not_whole_disks(tmp_path: Path) -> None:
    fat = bytearray(4096)
    fat[0x10], fat[0x15], fat[510:512] = 2, 0xF8, b"\x55\xaa"
    fat[446:462] = struct.pack("<B3sB3sII", 0x80, b"\0\2\0", 0x83, b"\xff\xff\xff", 1, 10)
    path = tmp_path / "fat.raw"
    path.write_bytes(bytes(fat))
    assert stream(path, "raw").verdict.format == "raw"  # type: ignore[union-attr]


def test_qemu_format_names_what_qemu_must_be_told() -> None:
    assert [qemu_format(f) for f in ("qcow2", "raw", "iso", "aki", "vhd", "vhdx", "vmdk", "vdi", None)] == [
        "qcow2", "raw", "raw", "raw", "vpc", "vhdx", "vmdk", "vdi", "raw"]


def test_a_truncated_header_is_refused_not_guessed() -> None:
    inspection = Inspection("qcow2")
    inspection.feed(b"QFI\xfb\x00\x00\x00\x03")  # the magic, then the data ends
    with pytest.raises(ImageRefused, match="incomplete"):
        inspection.finish()
