"""Reads voxels of a series at world (patient, LPS mm) points with pydicom and numpy, independently of
the viewer: for each point, the file whose slice plane holds it, the row and column of the pixel
whose centre it is (from Image Position, Image Orientation and Pixel Spacing; how far it lies from
a pixel centre and from the plane is printed too), and the modality value there (stored value x
slope + intercept). Prints JSON.

usage: pydicom_voxel.py '{"files": [...], "points": [[x, y, z], ...]}'
"""
import json
import sys

import numpy as np
import pydicom

ask = json.loads(sys.argv[1])
slices = []
for path in ask["files"]:
    ds = pydicom.dcmread(path)
    o = np.array([float(x) for x in ds.ImageOrientationPatient])
    slices.append((path, ds, np.array([float(x) for x in ds.ImagePositionPatient]), o[:3], o[3:]))
out = []
for point in ask["points"]:
    p = np.array(point, dtype=np.float64)
    best = None
    for path, ds, ipp, row_cos, col_cos in slices:
        normal = np.cross(row_cos, col_cos)
        dist = abs(float(np.dot(p - ipp, normal)))
        if best is None or dist < best[0]:
            best = (dist, path, ds, ipp, row_cos, col_cos)
    dist, path, ds, ipp, row_cos, col_cos = best
    row_spacing, col_spacing = (float(x) for x in ds.PixelSpacing)
    col = float(np.dot(p - ipp, row_cos)) / col_spacing
    row = float(np.dot(p - ipp, col_cos)) / row_spacing
    r, c = int(round(row)), int(round(col))
    value = float(ds.pixel_array[r, c]) * float(ds.get("RescaleSlope", 1)) + float(
        ds.get("RescaleIntercept", 0)
    )
    out.append({
        "file": path,
        "row": r,
        "column": c,
        "offPlane": dist,
        "offCentre": max(abs(row - r), abs(col - c)),
        "value": value,
    })
print(json.dumps(out))
