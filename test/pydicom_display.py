"""Reference display values computed by pydicom (Debian's python3-pydicom) for one frame of a file:
modality values for grey images (Modality LUT or rescale applied), 8-bit RGB for colour (palette applied,
YBR converted). Prints JSON {shape, values} with values flattened."""
import json
import sys

import numpy as np
import pydicom
from pydicom.pixel_data_handlers.util import apply_color_lut, apply_modality_lut, convert_color_space

path, frame = sys.argv[1], int(sys.argv[2])
ds = pydicom.dcmread(path)
arr = ds.pixel_array
if "BitsStored" in ds and int(ds.SamplesPerPixel) == 1 and ds.BitsStored < ds.BitsAllocated:
    # PS3.5 8: bits above Bits Stored are not part of the value (pydicom 2.3 leaves them in).
    bits = int(ds.BitsStored)
    raw = arr.astype(np.int64) & ((1 << bits) - 1)
    if int(ds.PixelRepresentation) == 1:
        raw = np.where(raw >= 1 << (bits - 1), raw - (1 << bits), raw)
    arr = raw
if int(ds.get("NumberOfFrames", 1) or 1) > 1:
    arr = arr[frame]
pi = str(ds.PhotometricInterpretation)
if pi == "PALETTE COLOR":
    out = apply_color_lut(arr, ds)
    if out.dtype != np.uint8:
        out = (out >> 8).astype(np.uint8)
elif int(ds.SamplesPerPixel) == 3:
    out = convert_color_space(arr, pi, "RGB") if pi.startswith("YBR") else arr
else:
    out = apply_modality_lut(arr, ds)
print(json.dumps({"shape": list(out.shape), "values": np.asarray(out, dtype=np.float64).ravel().tolist()}))
