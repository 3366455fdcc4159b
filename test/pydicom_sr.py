"""Reads a DICOM Structured Report with pydicom, independently of the viewer, and prints JSON: its SOP
class, template, patient and study, and each measurement group of its content tree with the instances
it references (SOP Class and Instance UIDs, frames), its numeric values (concept, value, unit code)
and its texts.

usage: pydicom_sr.py FILE
"""
import json
import sys

import pydicom

ds = pydicom.dcmread(sys.argv[1])


def meaning(item, key="ConceptNameCodeSequence"):
    seq = item.get(key)
    return str(seq[0].CodeMeaning) if seq else ""


def walk(items, group):
    for item in items:
        vt = item.get("ValueType")
        if vt == "IMAGE":
            for ref in item.ReferencedSOPSequence:
                group["refs"].append(
                    {
                        "class": str(ref.ReferencedSOPClassUID),
                        "instance": str(ref.ReferencedSOPInstanceUID),
                        "frames": [int(f) for f in ref.get("ReferencedFrameNumber", [])]
                        if ref.get("ReferencedFrameNumber") is not None
                        else [],
                    }
                )
        elif vt == "NUM":
            mv = item.MeasuredValueSequence[0]
            group["values"].append(
                {
                    "name": meaning(item),
                    "value": float(mv.NumericValue),
                    "unit": str(mv.MeasurementUnitsCodeSequence[0].CodeValue),
                }
            )
        elif vt == "TEXT":
            group["texts"].append({"name": meaning(item), "value": str(item.TextValue)})
        elif vt in ("SCOORD", "SCOORD3D"):
            group["graphics"].append(str(item.GraphicType))
        if "ContentSequence" in item:
            walk(item.ContentSequence, group)


groups = []


def find_groups(items):
    for item in items:
        if meaning(item) == "Measurement Group":
            g = {"refs": [], "values": [], "texts": [], "graphics": []}
            walk(item.ContentSequence, g)
            groups.append(g)
        elif "ContentSequence" in item:
            find_groups(item.ContentSequence)


find_groups(ds.ContentSequence)
print(
    json.dumps(
        {
            "sopClass": str(ds.SOPClassUID),
            "modality": str(ds.Modality),
            "title": meaning(ds),
            "template": str(ds.ContentTemplateSequence[0].TemplateIdentifier),
            "patientId": str(ds.get("PatientID", "")),
            "studyUid": str(ds.get("StudyInstanceUID", "")),
            "groups": groups,
        }
    )
)
