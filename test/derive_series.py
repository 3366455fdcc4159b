"""Derives a new series from real DICOM files with pydicom: the same patient, study and frame of
reference, pixels and geometry untouched, under a new Series Instance UID, Series Number and
Description, each instance with a new SOP Instance UID (also in its File Meta). Prints the written
paths as JSON, in the order of the input files.

usage: derive_series.py OUTDIR SERIES_NUMBER DESCRIPTION FILE...
"""
import json
import os
import sys

import pydicom
from pydicom.uid import generate_uid

out_dir, number, description, *files = sys.argv[1:]
series_uid = generate_uid()
written = []
for i, path in enumerate(files):
    ds = pydicom.dcmread(path)
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = int(number)
    ds.SeriesDescription = description
    sop = generate_uid()
    ds.SOPInstanceUID = sop
    ds.file_meta.MediaStorageSOPInstanceUID = sop
    target = os.path.join(out_dir, f"se{number}-{i + 1:03d}.dcm")
    ds.save_as(target, write_like_original=False)
    written.append(target)
print(json.dumps(written))
