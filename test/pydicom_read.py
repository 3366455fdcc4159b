"""Reads DICOM files with pydicom (Debian's python3-pydicom) and prints, as JSON, what another
toolkit sees: transfer syntax, pixel array shape and dtype, a digest of the pixel values, names."""
import hashlib
import json
import sys

import pydicom

out = []
for path in sys.argv[1:]:
    ds = pydicom.dcmread(path)
    arr = ds.pixel_array
    arr = arr.astype(arr.dtype.newbyteorder("="))  # compare values, not byte order
    out.append({
        "path": path,
        "transferSyntax": str(ds.file_meta.TransferSyntaxUID),
        "shape": list(arr.shape),
        "dtype": str(arr.dtype),
        "pixels": hashlib.sha256(arr.tobytes()).hexdigest(),
        "patientName": str(ds.get("PatientName", "")),
        "patientIdentityRemoved": str(ds.get("PatientIdentityRemoved", "")),
    })
print(json.dumps(out))
