"""Measures one DICOM file with pydicom and numpy, independently of the viewer, and prints JSON:
the pixel spacing, the modality values (stored value x slope + intercept) at given pixels, and the
mean and standard deviation (population, as Cornerstone's) of the pixels whose centres lie inside an
ellipse given by its centre and radii in pixel (column, row) coordinates.

usage: pydicom_roi.py FILE '{"points": [[x, y], ...], "ellipse": [cx, cy, rx, ry]}'
"""
import json
import sys

import numpy as np
import pydicom

ds = pydicom.dcmread(sys.argv[1])
ask = json.loads(sys.argv[2])
hu = ds.pixel_array.astype(np.float64) * float(ds.get("RescaleSlope", 1)) + float(
    ds.get("RescaleIntercept", 0)
)
out = {
    "spacing": [float(x) for x in ds.PixelSpacing],
    "values": [float(hu[y, x]) for x, y in ask.get("points", [])],
}
if "ellipse" in ask:
    cx, cy, rx, ry = ask["ellipse"]
    rows, cols = np.mgrid[0 : hu.shape[0], 0 : hu.shape[1]]
    inside = ((cols - cx) / rx) ** 2 + ((rows - cy) / ry) ** 2 <= 1
    sel = hu[inside]
    out["ellipse"] = {
        "count": int(sel.size),
        "mean": float(sel.mean()),
        "sd": float(sel.std()),
        "min": float(sel.min()),
        "max": float(sel.max()),
    }
print(json.dumps(out))
