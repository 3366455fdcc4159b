"""pydicom's view of the files the conformance test wrote (Debian's python3-pydicom), in one process.

Input (stdin, JSON): a list of {"source", "files": [paths that must read cleanly], "opened",
"allowed": [tags "ggggeeee" the opened file may change, at any level], "compressed": the source's
pixel data is encapsulated (then pixel data is left to the decoder conformance test), "swap": the
source is big endian}.
Output (stdout, JSON): for each record, the problems found, as sentences; empty when all is well.

A file reads cleanly when pydicom reads it, converts every value (nested sequences included) and
decodes its pixel data without an exception or a warning that the source itself does not raise (a
value the source holds invalid is restored as it was: fidelity first). The opened file must equal
the source element by element: the same tags at every level, the same VR (a VR the source left to
the dictionary, as UN does, may be made explicit), and the same value bytes, big-endian sources
compared after swapping each value by its VR's word size (PS3.5 7.3). When pydicom cannot read the
source (no File Meta, or a big-endian UN sequence it misreads), DCMTK's dcmconv +te rendering of the
source is the reference.
"""
import io
import json
import os
import subprocess
import sys
import tempfile
import warnings

import numpy as np
import pydicom
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence
from pydicom.tag import Tag

pydicom.config.settings.reading_validation_mode = pydicom.config.WARN

WORD = {"US": 2, "SS": 2, "OW": 2, "AT": 2, "UL": 4, "SL": 4, "FL": 4, "OF": 4, "OL": 4,
        "FD": 8, "OD": 8, "SV": 8, "UV": 8, "OV": 8}
PIXEL_TAGS = {0x7FE00010, 0x7FE00008, 0x7FE00009}


def tag_text(t):
    return f"({t >> 16:04X},{t & 0xFFFF:04X})"


def touch(ds):
    """Converts every value, nested sequences included (pydicom converts lazily)."""
    for elem in ds:
        if elem.VR == "SQ":
            for item in elem.value:
                touch(item)
        else:
            _ = elem.value


def read_clean(path, pixels=True):
    """The problems pydicom has with a file, paths left out (so that they compare across files)."""
    problems = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            ds = pydicom.dcmread(path, force=not pixels)
            touch(ds)
            if pixels and any(t in ds for t in PIXEL_TAGS):
                arr = ds.pixel_array
                if arr.size == 0:
                    problems.append("pixel_array is empty")
        except Exception as e:  # noqa: BLE001 - any failure is a finding
            problems.append(f"pydicom failed: {type(e).__name__}: {e}")
    problems += [f"pydicom warned: {w.message}" for w in caught]
    return [p.replace(path, "<file>") for p in problems]


def read_source(path):
    """The source as pydicom reads it, or DCMTK's Explicit VR Little Endian rendering of it.

    Returns (data set, whether the values are little endian already). pydicom reads lazily: the
    data set is returned unconverted, so that raw value bytes can be compared.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with open(path, "rb") as f:
            data = f.read()
        # A bare data set may start after a stray byte or two (odd/no_meta.dcm): try those starts.
        fallback = None
        for skip in (0, 1, 2, 3):
            try:
                probe = pydicom.dcmread(io.BytesIO(data[skip:]), force=True)
                touch(probe)
                again = pydicom.dcmread(io.BytesIO(data[skip:]), force=True)
                if any(t in probe for t in PIXEL_TAGS):
                    return again, False
                fallback = fallback or again
            except Exception:  # noqa: BLE001 - try the next start, then DCMTK
                pass
        fd, tmp = tempfile.mkstemp(suffix=".dcm")
        os.close(fd)
        try:
            subprocess.run(["dcmconv", "+te", path, tmp], check=True, capture_output=True)
            return pydicom.dcmread(tmp), True
        except subprocess.CalledProcessError:
            # Neither reads the pixel data (a truncated encapsulation): the rest is still compared.
            if fallback is None:
                raise
            return fallback, False
        finally:
            os.unlink(tmp)


def raw_bytes(ds, tag):
    raw = ds._dict[tag]
    if isinstance(raw, RawDataElement):
        return raw.value if raw.value is not None else b""
    return None


def normalise(value, vr, swap):
    if value is None:
        return None
    value = bytes(value)
    w = WORD.get(vr, 1)
    if swap and w > 1:
        return np.frombuffer(value[: len(value) - len(value) % w], dtype=f">u{w}").astype(
            f"<u{w}").tobytes()
    return value


def compare(src, opened, swap, allowed, where, problems):
    stags = {int(t) for t in src.keys()}
    otags = {int(t) for t in opened.keys()}
    for t in sorted((stags ^ otags) - allowed):
        problems.append(f"{where}{tag_text(t)} is {'missing' if t in stags else 'added'} in the opened file")
    for t in sorted((stags & otags) - allowed):
        ra, rb = raw_bytes(src, t), raw_bytes(opened, t)  # before pydicom converts them
        a, b = src[t], opened[t]
        pixel_ob = t in PIXEL_TAGS and (a.VR, b.VR) == ("OW", "OB")  # 8-bit pixel data is OB
        if a.VR != b.VR and a.VR != "UN" and not pixel_ob:
            problems.append(f"{where}{tag_text(t)} VR {a.VR} became {b.VR}")
            continue
        if b.VR == "SQ":
            if len(a.value) != len(b.value):
                problems.append(f"{where}{tag_text(t)} has {len(a.value)} items, opened {len(b.value)}")
                continue
            for i, (ia, ib) in enumerate(zip(a.value, b.value)):
                compare(ia, ib, swap, allowed, f"{where}{tag_text(t)}[{i}]", problems)
            continue
        va = normalise(ra, a.VR if a.VR != "UN" else b.VR, swap)
        vb = normalise(rb, b.VR, False)
        same = a.value == b.value if va is None or vb is None else va == vb
        if not same and t in PIXEL_TAGS and va is not None and vb is not None:
            # Native pixel data is restored at the image's exact length (docs/protection.md):
            # bytes beyond it are dropped, and an odd length is padded with a zero byte.
            n = len(vb)
            same = va[:n] == vb or (
                len(va) >= n - 1 and va[: n - 1] == vb[: n - 1] and vb[n - 1] == 0)
        if not same:
            problems.append(f"{where}{tag_text(t)} {b.VR} value differs")


def main():
    records = json.load(sys.stdin)
    out = []
    for r in records:
        problems = []
        inherited = set(read_clean(r["source"], pixels=not r.get("compressed", False)))
        for path in r["files"]:
            problems += [f"{path}: {p}" for p in read_clean(path) if p not in inherited]
        try:
            src, via_dcmtk = read_source(r["source"])
            opened = pydicom.dcmread(r["opened"])
            allowed = {int(t, 16) for t in r.get("allowed", [])}
            if r.get("compressed"):
                allowed |= PIXEL_TAGS
            swap = r.get("swap", False) and not via_dcmtk
            compare(src, opened, swap, allowed, "", problems)
        except Exception as e:  # noqa: BLE001
            problems.append(f"comparison failed: {type(e).__name__}: {e}")
        out.append({"source": r["source"], "problems": problems})
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
