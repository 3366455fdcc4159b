/**
 * The measurements as a DICOM Structured Report (TID 1500 Measurement Report), made in the browser by
 * Cornerstone3D's own SR adapter (`@cornerstonejs/adapters`, on dcmjs) and saved as a local file:
 * nothing is sent anywhere. Each measurement group names the instance it was made on by its SOP Class
 * and SOP Instance UIDs (and its frame, for a multi-frame image); patient and study come from that
 * instance's restored header, as they would in any viewer's SR.
 *
 * The adapter asks a metadata provider for `sopCommonModule`, `instance` (the referenced instance as a
 * dcmjs "naturalised" dataset) and `frameNumber`; Cornerstone's own provider answers the geometry
 * (image ↔ world coordinates of the drawn points). The adapter and dcmjs are loaded on demand (only a
 * clinician who exports pays for them).
 */
import { metaData } from '@cornerstonejs/core';
import { annotation as csAnnotation, type Types as ToolTypes } from '@cornerstonejs/tools';
import type { TagRow } from '../pipeline/protocol.ts';
import { parseImageId, type OpenedInstance } from './images.ts';
import { MEASURE_TOOLS, statsOf } from './measurements.ts';

/** Patient, study and series attributes of a referenced instance the SR copies (TID 1500's context). */
const COPIED: Record<string, string> = {
  '(0008,0016)': 'SOPClassUID',
  '(0008,0018)': 'SOPInstanceUID',
  '(0008,0020)': 'StudyDate',
  '(0008,0030)': 'StudyTime',
  '(0008,0050)': 'AccessionNumber',
  '(0008,0060)': 'Modality',
  '(0008,0090)': 'ReferringPhysicianName',
  '(0008,1030)': 'StudyDescription',
  '(0008,103E)': 'SeriesDescription',
  '(0010,0010)': 'PatientName',
  '(0010,0020)': 'PatientID',
  '(0010,0030)': 'PatientBirthDate',
  '(0010,0040)': 'PatientSex',
  '(0010,1010)': 'PatientAge',
  '(0020,000D)': 'StudyInstanceUID',
  '(0020,000E)': 'SeriesInstanceUID',
  '(0020,0010)': 'StudyID',
  '(0020,0011)': 'SeriesNumber',
  '(0020,0013)': 'InstanceNumber',
  '(0020,0052)': 'FrameOfReferenceUID',
  '(0028,0008)': 'NumberOfFrames',
};

const NUMBERS = new Set(['SeriesNumber', 'InstanceNumber', 'NumberOfFrames']);

/**
 * The referenced instance as dcmjs' naturalised dataset (keyword → value), from the top level of its
 * restored header (what the tag browser shows): the attributes an SR copies and references.
 */
export function naturalInstance(header: readonly TagRow[]): Record<string, string | number> {
  const out: Record<string, string | number> = {};
  for (const row of header) {
    const key = row.depth === 0 ? COPIED[row.tag] : undefined;
    if (!key || row.value === '') continue;
    if (NUMBERS.has(key)) {
      const n = Number(row.value.split('\\')[0]);
      if (Number.isFinite(n)) out[key] = n;
    } else out[key] = row.value;
  }
  return out;
}

/** What an export produced. */
export interface MeasurementReportFile {
  readonly bytes: Uint8Array;
  readonly sopInstanceUid: string;
  /** Measurements written, and the SOP Instance UIDs of the instances they were made on. */
  readonly measurements: number;
  readonly instances: readonly string[];
}

/** A finished measurement on an image of the study, with the image it was made on; else undefined. */
function exportable(
  a: ToolTypes.Annotation,
  known: (ref: string) => OpenedInstance | undefined,
): { a: ToolTypes.Annotation; imageId: string; tool: string } | undefined {
  const imageId = a.metadata?.referencedImageId;
  const tool = a.metadata?.toolName;
  if (!imageId?.startsWith('zt:') || !tool || !a.annotationUID) return undefined;
  if (!Object.values(MEASURE_TOOLS).includes(tool) || !statsOf(a)) return undefined;
  return known(parseImageId(imageId).ref)?.meta.sopInstanceUid ? { a, imageId, tool } : undefined;
}

/**
 * Builds the TID 1500 Measurement Report of every finished measurement. `known` gives the opened
 * instance of an image reference (the study's). Throws when there is nothing to export.
 */
export async function measurementReport(
  known: (ref: string) => OpenedInstance | undefined,
): Promise<MeasurementReportFile> {
  const annotations = csAnnotation.state
    .getAllAnnotations()
    .flatMap((a) => exportable(a, known) ?? []);
  if (annotations.length === 0) throw new Error('there is no finished measurement to export');
  const [{ adaptersSR }, dcmjs] = await Promise.all([
    import('@cornerstonejs/adapters'),
    import('dcmjs'),
  ]);
  const { MeasurementReport, Length } = adaptersSR.Cornerstone3D;
  registerLengthUnit(MeasurementReport, Length);

  // The adapter's tool state: image id → tool name → { data: annotations }.
  const toolState: Record<string, Record<string, { data: ToolTypes.Annotation[] }>> = {};
  for (const { a, imageId, tool } of annotations) {
    const byTool = (toolState[imageId] ??= {});
    (byTool[tool] ??= { data: [] }).data.push(a);
  }
  const instanceOf = (imageId: string) => {
    const inst = known(parseImageId(imageId).ref);
    return inst ? naturalInstance(inst.header) : undefined;
  };
  const provider = {
    get(type: string, imageId: string): unknown {
      if (type === 'instance') return instanceOf(imageId);
      if (type === 'sopCommonModule') {
        const i = instanceOf(imageId);
        return i && { sopClassUID: i.SOPClassUID, sopInstanceUID: i.SOPInstanceUID };
      }
      if (type === 'frameNumber') return parseImageId(imageId).frame;
      return metaData.get(type, imageId);
    },
  };
  const now = new Date();
  const report = MeasurementReport.generateReport(toolState, provider, {
    Manufacturer: 'Zero-trust DICOM viewer',
    ManufacturerModelName: 'ztv',
    SeriesDescription: 'Measurements',
    SeriesNumber: '9001',
    SoftwareVersions: '1',
    ContentDate: dicomDate(now),
    ContentTime: dicomTime(now),
  }) as { dataset: Record<string, unknown> & { SOPInstanceUID: string } };
  const bytes = new Uint8Array(dcmjs.default.data.datasetToDict(report.dataset).write());
  const instances = [
    ...new Set(annotations.map(({ imageId }) => String(instanceOf(imageId)?.SOPInstanceUID))),
  ];
  return {
    bytes,
    sopInstanceUid: report.dataset.SOPInstanceUID,
    measurements: annotations.length,
    instances,
  };
}

const pad = (n: number, w = 2) => String(n).padStart(w, '0');
const dicomDate = (d: Date) => `${d.getFullYear()}${pad(d.getMonth() + 1)}${pad(d.getDate())}`;
const dicomTime = (d: Date) => `${pad(d.getHours())}${pad(d.getMinutes())}${pad(d.getSeconds())}`;

let lengthUnitRegistered = false;

/**
 * The adapter's Length writes every distance in mm (dcmjs' default unit): where the image has no
 * spacing the tool measured pixels, and the SR must say so (dcmjs codes "px" as UCUM "1", no unit).
 */
function registerLengthUnit(
  report: { registerTool(adapter: unknown, replace?: boolean): void },
  Length: {
    getTID300RepresentationArguments(tool: unknown, is3D?: boolean): Record<string, unknown>;
  },
): void {
  if (lengthUnitRegistered) return;
  lengthUnitRegistered = true;
  const base = Length.getTID300RepresentationArguments.bind(Length);
  const WithUnit = Object.create(Length) as typeof Length;
  WithUnit.getTID300RepresentationArguments = (tool: unknown, is3D?: boolean) => {
    const args = base(tool, is3D);
    const unit = statsOf(tool as ToolTypes.Annotation)?.unit;
    return typeof unit === 'string' ? { ...args, unit: unit.split(' ')[0] } : args;
  };
  report.registerTool(WithUnit, true);
}
