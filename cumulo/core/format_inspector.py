"""What a disk image really is, read from its bytes as they stream past, and whether QEMU may open it.

A disk image can make the program that opens it read other files of the host: a qcow2 with a
backing file or an external data file, a VMDK whose descriptor names extents elsewhere (the class
of CVE-2024-32498).  The image service refuses such uploads, and refuses data that is not the
``disk_format`` the image claims; the compute node runs the same inspection again (and then
``qemu-img info``) before QEMU opens a base image.

Inspection is streaming and bounded: each format recognises itself from a few regions of the
stream (headers in the first KiB, a VMDK descriptor of at most 1 MiB, a VHDX metadata table, the
last 1536 bytes for a VMDK footer), never holding more than about 1.5 MiB, and it costs nothing once
every format has decided.  ``Inspection.feed`` raises ``ImageRefused`` as soon as the verdict is
certain; ``Inspection.finish`` gives the final verdict at the end of the data.

Facts about the formats come from their specifications, QEMU's block drivers and the rules
Glance and Nova apply (oslo.utils' format inspector); the code is Cumulo's own.
"""

from __future__ import annotations

import re
import struct
import uuid
from dataclasses import dataclass, field
from pathlib import Path

KIB, MIB = 1 << 10, 1 << 20
TAIL = 1536  # a VMDK footer: footer marker, footer, end-of-stream marker (three sectors)


class ImageRefused(ValueError):
    """The data is unsafe, or is not the format the image claims; the message says which."""


class Region:
    """Bytes ``offset`` .. ``offset + length`` of the stream, captured as they pass."""

    __slots__ = ("offset", "length", "data", "missed")

    def __init__(self, offset: int, length: int) -> None:
        self.offset, self.length, self.data, self.missed = offset, length, bytearray(), False

    @property
    def complete(self) -> bool:
        return len(self.data) >= self.length

    def take(self, chunk: bytes, start: int) -> None:
        if self.complete or self.missed:
            return
        want = self.offset + len(self.data)
        if start > want:  # the stream is already past what this region needed
            self.missed = True
            return
        end = start + len(chunk)
        if end <= want:
            return
        self.data += chunk[want - start:min(end, self.offset + self.length) - start]


class Format:
    """One disk format: ``match`` is None until decided; ``settled`` once everything needed to
    judge it is in.  Subclasses add regions and read them in ``advance``."""

    name = ""
    qemu = ""  # what qemu-img calls it

    def __init__(self) -> None:
        self.regions: dict[str, Region] = {}
        self.match: bool | None = None
        self.problems: list[str] = []
        self.virtual_size: int | None = None
        self.wants_tail = False
        self.ended = False
        self.setup()

    def setup(self) -> None:
        """Declare the first regions."""

    def advance(self) -> None:
        """Read what the completed regions say; may decide ``match``, add regions or problems."""

    def add(self, name: str, offset: int, length: int) -> Region:
        region = self.regions[name] = Region(offset, length)
        return region

    def no(self) -> None:
        self.match = False
        self.regions.clear()

    @property
    def settled(self) -> bool:
        if self.match is False:
            return True
        return self.match is True and all(r.complete or r.missed for r in self.regions.values())

    def feed(self, chunk: bytes, start: int) -> None:
        if self.settled:
            return
        seen: set[Region] = set()  # the regions themselves (by identity), held until the chunk is done
        while True:  # a region added by advance() may begin inside this same chunk
            fresh = [r for r in self.regions.values() if r not in seen]
            if not fresh:
                break
            for r in fresh:
                seen.add(r)
                r.take(chunk, start)
            self.advance()
            if self.match is False:
                break

    def end(self, tail: bytes) -> None:
        """The data ended: undecided means no; a match with regions left unread is truncated."""
        self.ended = True
        if self.match is not False:
            self.advance()  # a last look: some formats decide on what a short stream held
        if self.match is None:
            self.no()
            return
        if self.match and self.wants_tail:
            self.read_tail(tail)
        if self.match and any(r.missed or not r.complete for r in self.regions.values()):
            self.problems.append(f"the {self.name} structure is incomplete or out of order (truncated image?)")

    def read_tail(self, tail: bytes) -> None:
        """The last ``TAIL`` bytes, for formats that keep something at the end."""


NOT_TEXT = re.compile(rb"[^\t\n\r\x20-\x7e]")


def text(data: bytes) -> str:
    return repr(data.decode("ascii", "replace")[:120])


class Qcow2(Format):
    """QEMU copy-on-write v2/v3: a big-endian header; the danger is in what it points at."""

    name, qemu = "qcow2", "qcow2"
    KNOWN_INCOMPATIBLE = 0x1F  # dirty, corrupt, external data file, compression type, extended L2
    DATA_FILE = 1 << 2

    def setup(self) -> None:
        self.add("header", 0, 104)

    def advance(self) -> None:
        head = self.regions.get("header")
        if self.match is None and head is not None and len(head.data) >= 4:
            if bytes(head.data[:4]) != b"QFI\xfb":
                return self.no()
            self.match = True
        if self.match and head is not None and head.complete and "checked" not in self.regions:
            self.add("checked", 0, 0)
            version, bf_offset, bf_size = struct.unpack(">IQI", head.data[4:20])
            self.virtual_size = struct.unpack(">Q", head.data[24:32])[0]
            if version == 1:
                self.name = "qcow"
                self.problems.append("it is a qcow version 1 image, which is not supported")
            elif version not in (2, 3):
                self.problems.append(f"it is a qcow2 image of unknown version {version}")
            if bf_offset:
                if 0 < bf_size <= 1023 and bf_offset < 64 * KIB:
                    self.add("backing", bf_offset, bf_size)
                else:
                    self.problems.append("it is a qcow2 image with a backing file")
            if version == 3:
                incompatible = struct.unpack(">Q", head.data[72:80])[0]
                if incompatible & self.DATA_FILE:
                    self.problems.append("it is a qcow2 image with an external data file")
                if incompatible & ~self.KNOWN_INCOMPATIBLE:
                    self.problems.append(f"it is a qcow2 image with unknown incompatible features "
                                         f"({incompatible & ~self.KNOWN_INCOMPATIBLE:#x})")
        backing = self.regions.get("backing")
        if backing is not None and backing.complete and "named" not in self.regions:
            self.add("named", 0, 0)
            self.problems.append(f"it is a qcow2 image with a backing file ({text(bytes(backing.data))})")


class Magic(Format):
    """Formats recognised by a signature alone: detected so they are never taken for raw data."""

    at, magic, refuse = 0, b"", ""

    def setup(self) -> None:
        self.add("magic", self.at, len(self.magic))

    def advance(self) -> None:
        region = self.regions["magic"]
        if region.complete and self.match is None:
            if bytes(region.data) != self.magic:
                return self.no()
            self.match = True
            if self.refuse:
                self.problems.append(self.refuse)


class QED(Magic):
    name, qemu, magic = "qed", "qed", b"QED\x00"
    refuse = "it is a QED image, a format no service here supports"


class LUKS(Magic):
    name, qemu, magic = "luks", "luks", b"LUKS\xba\xbe"
    refuse = "it is a LUKS encrypted volume, which cannot be inspected"


class Bochs(Magic):
    name, qemu, magic = "bochs", "bochs", b"Bochs Virtual HD Image"
    refuse = "it is a Bochs disk image, which is not supported"


class Cloop(Magic):
    name, qemu, magic = "cloop", "cloop", b"#!/bin/sh\n#V2.0 Format\n"
    refuse = "it is a cloop compressed image, which is not supported"


class Parallels(Format):
    name, qemu = "ploop", "parallels"

    def setup(self) -> None:
        self.add("magic", 0, 16)

    def advance(self) -> None:
        region = self.regions["magic"]
        if region.complete and self.match is None:
            if bytes(region.data) not in (b"WithoutFreeSpace", b"WithouFreSpacExt"):
                return self.no()
            self.match = True


class VHD(Format):
    """Virtual PC: a 512-byte big-endian footer copied at the start ("conectix")."""

    name, qemu = "vhd", "vpc"
    DIFFERENCING = 4

    def setup(self) -> None:
        self.add("footer", 0, 512)

    def advance(self) -> None:
        region = self.regions["footer"]
        if self.match is None and len(region.data) >= 8:
            if bytes(region.data[:8]) != b"conectix":
                return self.no()
            self.match = True
        if self.match and region.complete and self.virtual_size is None:
            self.virtual_size, = struct.unpack(">Q", region.data[48:56])
            disk_type, = struct.unpack(">I", region.data[60:64])
            if disk_type == self.DIFFERENCING:
                self.problems.append("it is a differencing VHD, which refers to a parent image")


def guid(text_form: str) -> bytes:
    return uuid.UUID(text_form).bytes_le  # Microsoft GUIDs: the first three fields little-endian


class VHDX(Format):
    """Hyper-V VHDX: the region table at 192 KiB leads to the metadata table, which leads to the
    virtual disk size; a parent locator there means a differencing disk (refused)."""

    name, qemu = "vhdx", "vhdx"
    METADATA = guid("8B7CA206-4790-4B9A-B8FE-575F050F886E")
    VIRTUAL_DISK_SIZE = guid("2FA54224-CD1B-4876-B211-5DBED83BF4B8")
    PARENT_LOCATOR = guid("A8D35F2D-B30B-454D-ABF7-D3D84834AB0C")

    def setup(self) -> None:
        self.add("ident", 0, 8)

    def advance(self) -> None:
        if self.match is None and self.regions["ident"].complete:
            if bytes(self.regions["ident"].data) != b"vhdxfile":
                return self.no()
            self.match = True
            self.add("regions", 192 * KIB, 16 + 2047 * 32)
        table = self.regions.get("regions")
        if table is not None and table.complete and "metadata" not in self.regions:
            signature, _, count = struct.unpack("<4sII", table.data[:12])
            if signature != b"regi" or count > 2047:
                self.problems.append("it is a VHDX image with a damaged region table")
                self.regions.pop("regions")
                return
            for i in range(count):
                entry = table.data[16 + 32 * i:48 + 32 * i]
                if bytes(entry[:16]) == self.METADATA:
                    offset, = struct.unpack("<Q", entry[16:24])
                    self.add("metadata", offset, 32 + 2047 * 32)
                    return
            self.problems.append("it is a VHDX image without a metadata region")
        meta = self.regions.get("metadata")
        if meta is not None and len(meta.data) >= 32 and "size" not in self.regions and "done" not in self.regions:
            signature, _, count = struct.unpack("<8sHH", meta.data[:12])
            if signature != b"metadata" or count > 2047:
                self.problems.append("it is a VHDX image with a damaged metadata table")
                self.add("done", 0, 0)
                return
            if len(meta.data) < 32 + 32 * count:
                return
            meta.length = len(meta.data)  # the table is in: stop capturing
            self.add("done", 0, 0)
            for i in range(count):
                entry = meta.data[32 + 32 * i:64 + 32 * i]
                item, offset = bytes(entry[:16]), struct.unpack("<I", entry[16:20])[0]
                if item == self.PARENT_LOCATOR:
                    self.problems.append("it is a differencing VHDX, which refers to a parent image")
                elif item == self.VIRTUAL_DISK_SIZE:
                    self.add("size", meta.offset + offset, 8)
        size = self.regions.get("size")
        if size is not None and size.complete and self.virtual_size is None:
            self.virtual_size, = struct.unpack("<Q", size.data)


class VMDK(Format):
    """VMware disks.  Only one file with a sparse header and an embedded descriptor is safe
    (monolithicSparse, streamOptimized): the descriptor of any other kind names extents in
    other files, which QEMU would open.  A text-only descriptor is recognised (QEMU would take it
    for a VMDK) and refused."""

    name, qemu = "vmdk", "vmdk"
    SAFE_TYPES = ("monolithicsparse", "streamoptimized")
    GD_AT_END = 0xFFFFFFFFFFFFFFFF
    MAX_DESCRIPTOR = MIB - 1

    def setup(self) -> None:
        self.add("header", 0, 512)
        self.header: tuple[int, ...] = ()
        self.text_descriptor = False
        self.scanned = 0  # how much of a text descriptor is known to be text

    @staticmethod
    def sparse_header(data: bytes | bytearray) -> tuple[int, ...]:
        # version, flags, capacity, grain, descriptor offset and size (sectors), GTEs per GT,
        # redundant grain directory, grain directory
        return struct.unpack("<IIQQQQIQQ", data[4:64])

    def advance(self) -> None:
        head = self.regions.get("header")
        if self.match is None and head is not None and len(head.data) >= 4:
            magic = bytes(head.data[:4])
            if magic == b"KDMV":
                self.match = True
            elif magic == b"COWD":
                self.match = True
                self.problems.append("it is a VMDK version 3 (COWD) image, which is not supported")
                self.regions.clear()
                return
            elif not self.looks_like_text(head.data):
                return self.no()
            elif head.complete or self.ended:
                self.text_descriptor = True  # perhaps a descriptor file: read it to know
                self.regions.clear()
                self.add("descriptor", 0, self.MAX_DESCRIPTOR).data += head.data
                self.scanned = len(head.data)
        if self.text_descriptor:
            return self.advance_text()
        if self.match and head is not None and len(head.data) >= 64 and not self.header:
            self.header = self.sparse_header(head.data)
            version, _, capacity, _, desc_sector, desc_sectors, _, _, gd = self.header
            self.virtual_size = capacity * 512
            if version not in (1, 2, 3):
                self.problems.append(f"it is a VMDK of unknown version {version}")
            if desc_sector != 1 or not desc_sectors:
                self.problems.append("it is a VMDK whose descriptor is not embedded where QEMU expects it")
                return
            self.add("descriptor", 512, min(desc_sectors * 512, self.MAX_DESCRIPTOR))
            if gd == self.GD_AT_END:
                self.wants_tail = True  # the footer at the end overrides the header
            elif capacity == 0:
                self.problems.append("it is a VMDK of capacity 0, which QEMU reads through its descriptor's extents")
        descriptor = self.regions.get("descriptor")
        if descriptor is not None and descriptor.complete and "read" not in self.regions:
            self.add("read", 0, 0)
            self.check_descriptor(bytes(descriptor.data).split(b"\0", 1)[0])

    @staticmethod
    def looks_like_text(data: bytes | bytearray, start: int = 0) -> bool:
        return NOT_TEXT.search(data, start) is None

    def advance_text(self) -> None:
        descriptor = self.regions.get("descriptor")
        if descriptor is None or "read" in self.regions:
            return
        if not self.looks_like_text(descriptor.data, self.scanned):  # binary after all: no descriptor file
            return self.no()
        self.scanned = len(descriptor.data)
        if descriptor.complete or self.ended:
            content = bytes(descriptor.data)
            if b"createtype" not in content.lower():
                return self.no()
            descriptor.length = len(descriptor.data)
            self.match = True
            self.add("read", 0, 0)
            self.check_descriptor(content)

    def check_descriptor(self, content: bytes) -> None:
        lines = [line.strip() for line in content.decode("ascii", "replace").splitlines()]
        create_type, extents = "", []
        for line in lines:
            low = line.lower()
            if not line or line.startswith("#") or low.startswith("ddb."):
                continue
            if low.startswith("createtype"):
                create_type = line.partition("=")[2].strip().strip('"')
            elif low.split(" ", 1)[0] in ("rw", "rdonly", "noaccess"):
                extents.append(line)
            elif "=" in line and " " not in line.partition("=")[0].strip():
                continue  # a header field: version=, CID=, parentCID=, ...
            else:
                self.problems.append(f"it is a VMDK whose descriptor has a line this service does not understand "
                                     f"({text(line.encode())})")
                return
        if create_type.lower() not in self.SAFE_TYPES:
            self.problems.append(f"it is a VMDK of type {create_type or 'unknown'!r}: only single-file "
                                 "monolithicSparse and streamOptimized VMDKs are accepted")
            return
        if len(extents) != 1:
            self.problems.append(f"it is a VMDK whose descriptor names {len(extents)} extents, not its own one")
        for extent in extents:
            if "/" in extent or "\\" in extent:
                self.problems.append(f"it is a VMDK whose descriptor names an extent in another file "
                                     f"({text(extent.encode())})")
        if self.text_descriptor:
            self.problems.append("it is a VMDK descriptor file, whose extents are other files")

    def read_tail(self, tail: bytes) -> None:
        if len(tail) < TAIL or not self.header:
            self.problems.append("it is a VMDK whose footer is missing")
            return
        marker, footer, eos = tail[:512], tail[512:1024], tail[1024:]
        _, size, kind = struct.unpack("<QII", marker[:16])
        if size != 0 or kind != 3 or any(marker[16:]) or any(eos):
            self.problems.append("it is a VMDK whose footer markers are invalid")
            return
        if footer[:4] != b"KDMV":
            self.problems.append("it is a VMDK whose footer is not a VMDK header")
            return
        mine = self.sparse_header(footer)
        version, _, capacity, _, desc_sector, desc_sectors, _, _, gd = mine
        if (version, desc_sector, desc_sectors) != (self.header[0], self.header[4], self.header[5]):
            self.problems.append("it is a VMDK whose footer names another descriptor than its header")
        elif gd == self.GD_AT_END:
            self.problems.append("it is a VMDK whose footer points at yet another footer")
        elif capacity == 0:
            self.problems.append("it is a VMDK of capacity 0, which QEMU reads through its descriptor's extents")
        else:
            self.virtual_size = capacity * 512


class VDI(Format):
    """VirtualBox: the signature at 0x40, the disk size at 0x170."""

    name, qemu = "vdi", "vdi"

    def setup(self) -> None:
        self.add("header", 0, 0x178)

    def advance(self) -> None:
        head = self.regions["header"]
        if self.match is None and len(head.data) >= 0x44:
            if struct.unpack("<I", head.data[0x40:0x44])[0] != 0xBEDA107F:
                return self.no()
            self.match = True
        if self.match and head.complete and self.virtual_size is None:
            self.virtual_size, = struct.unpack("<Q", head.data[0x170:0x178])


class ISO(Format):
    """ISO 9660 ("CD001" in the volume descriptor at 32 KiB) or UDF (a "BEA01" ... "NSR0x"
    recognition sequence there); the first 32 KiB are free for boot code."""

    name, qemu = "iso", "raw"

    def setup(self) -> None:
        self.add("descriptors", 32 * KIB, 3 * 2 * KIB)

    def advance(self) -> None:
        area = self.regions["descriptors"]
        if self.match is not None or not area.complete:
            return
        ids = [bytes(area.data[i * 2048 + 1:i * 2048 + 6]) for i in range(3)]
        if ids[0] == b"CD001":
            self.match = True
            if area.data[0] == 1:  # the primary volume descriptor: its block count and block size
                blocks, = struct.unpack("<I", area.data[80:84])
                block_size, = struct.unpack("<H", area.data[128:130])
                self.virtual_size = blocks * block_size
        elif ids[0] == b"BEA01" and ({b"NSR02", b"NSR03"} & set(ids[1:])):
            self.match = True
        else:
            self.no()


class GPT(Format):
    """A whole disk with a partition table (MBR, or GPT's protective MBR).  Detected so that raw
    images of whole disks and hybrid ISOs are told apart from what QEMU would interpret; an MBR
    signature over a table that makes no sense is just raw data."""

    name, qemu = "gpt", "raw"

    def setup(self) -> None:
        self.add("mbr", 0, 512)

    def advance(self) -> None:
        mbr = self.regions["mbr"]
        if self.match is not None or not mbr.complete:
            return
        if mbr.data[510:512] != b"\x55\xaa" or (mbr.data[0x10] == 2 and mbr.data[0x15] == 0xF8):  # FAT boot sector
            return self.no()
        used = 0
        for i in range(4):
            boot, kind = mbr.data[446 + 16 * i], mbr.data[446 + 16 * i + 4]
            if boot not in (0, 0x80):
                return self.no()
            used += kind != 0
        if not used:
            return self.no()
        self.match = True


FORMATS: tuple[type[Format], ...] = (Qcow2, QED, LUKS, Bochs, Cloop, Parallels, VHD, VHDX, VMDK, VDI, ISO, GPT)
# disk_format -> the formats its data may be; the Amazon kinds and ploop are what Glance cannot
# inspect (anything QEMU would not interpret is fine), raw is raw or a whole disk
ACCEPTS = {"raw": {"raw", "gpt"}, "ami": {"raw", "gpt", "iso"}, "ari": {"raw", "gpt", "iso"},
           "aki": {"raw", "gpt", "iso"}, "ploop": {"raw", "gpt", "ploop"}, "iso": {"iso"}, "qcow2": {"qcow2"},
           "vmdk": {"vmdk"}, "vhd": {"vhd"}, "vhdx": {"vhdx"}, "vdi": {"vdi"}}
# container formats whose data is the disk itself (others wrap it: only safety is checked there)
BARE = ("bare", "ami", "ari", "aki")
QEMU_NAMES = {"raw": "raw", "gpt": "raw", "iso": "raw", "ami": "raw", "ari": "raw", "aki": "raw", "qcow2": "qcow2",
              "vmdk": "vmdk", "vhd": "vpc", "vhdx": "vhdx", "vdi": "vdi", "ploop": "parallels"}


def qemu_format(disk_format: str | None) -> str:
    """The ``-f`` QEMU must use for an image of this ``disk_format`` (never probed)."""
    return QEMU_NAMES.get(disk_format or "raw", "raw")


@dataclass
class Verdict:
    format: str  # what the data is (raw when nothing else matched)
    virtual_size: int | None
    size: int = 0


@dataclass
class Inspection:
    """Feed it the stream in order; it refuses as early as it can be sure."""

    disk_format: str | None
    container_format: str | None = "bare"
    require_match: bool = True
    formats: list[Format] = field(default_factory=lambda: [f() for f in FORMATS])
    position: int = 0
    tail: bytes = b""
    verdict: Verdict | None = None  # set by finish()

    settled: bool = False  # every format has decided: from then on only a wanted tail is kept
    keep_tail: bool = True

    @property
    def done(self) -> bool:
        """Everything is known except perhaps the tail: feeding further costs (almost) nothing."""
        if not self.settled and all(f.settled for f in self.formats):
            self.settled, self.keep_tail = True, any(f.wants_tail for f in self.formats)
        return self.settled

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        start, self.position = self.position, self.position + len(chunk)
        if self.keep_tail:
            self.tail = (self.tail + chunk[-TAIL:])[-TAIL:] if len(chunk) < TAIL else chunk[-TAIL:]
        if self.done:
            return
        for f in self.formats:
            f.feed(chunk, start)
        self.judge(final=False)

    def finish(self, tail: bytes | None = None) -> Verdict:
        """The end of the data (``tail``: its last bytes, when they were not fed)."""
        for f in self.formats:
            f.end(self.tail if tail is None else tail)
        self.verdict = self.judge(final=True)
        assert self.verdict is not None
        return self.verdict

    def judge(self, final: bool) -> Verdict | None:
        matched = [f for f in self.formats if f.match]
        names = {f.name for f in matched}
        if names == {"iso", "gpt"}:  # a hybrid ISO boots as a disk too: it is an ISO
            matched = [f for f in matched if f.name == "iso"]
        decided = final or all(f.match is not None for f in self.formats)
        if len(matched) > 1 and decided:
            raise ImageRefused(f"The image data matches several disk formats at once "
                               f"({', '.join(sorted(names))}): refused as ambiguous.")
        for f in matched:
            if f.problems and (final or f.settled):
                raise ImageRefused(f"The image data was refused: {'; '.join(dict.fromkeys(f.problems))}.")
        if not decided:
            return None
        detected = matched[0].name if matched else "raw"
        claimed = self.disk_format
        if claimed and self.require_match and (self.container_format or "bare") in BARE:
            if detected not in ACCEPTS.get(claimed, {"raw"}):
                seen = "matches no known disk format (raw data)" if detected == "raw" else f"is in {detected} format"
                raise ImageRefused(f"The image's disk_format is {claimed} but its data {seen}.")
        if not final:
            return None
        virtual = matched[0].virtual_size if matched else None
        if detected in ("raw", "gpt") or virtual is None and detected == "iso":
            virtual = self.position
        return Verdict(detected, virtual, self.position)


def inspect_file(path: str | Path, disk_format: str | None, container_format: str | None = "bare",
                 require_match: bool = True, block: int = 256 * KIB) -> Verdict:
    """Inspect a file already on disk: read from the start only until every format has decided,
    then the last bytes (a VMDK footer) -- never a pass over the whole of a large file."""
    inspection = Inspection(disk_format, container_format, require_match)
    with open(path, "rb") as fh:
        size = fh.seek(0, 2)
        fh.seek(0)
        while not inspection.done and (data := fh.read(block)):
            inspection.feed(data)
        fh.seek(max(0, size - TAIL))
        tail = fh.read(TAIL)
    inspection.position = size
    return inspection.finish(tail)


__all__ = ["ImageRefused", "Inspection", "Verdict", "inspect_file", "qemu_format", "ACCEPTS", "BARE"]
