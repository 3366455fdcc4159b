/**
 * `npm start`: the whole federation on localhost — authority, cloud, consumer and producer hospitals,
 * each its own process with its own data and certificates — with the viewer built and served by the
 * consumer hospital, the real sample studies outsourced through the producer (idempotently), demo
 * clinicians seeded. Prints the viewer URL and the demo accounts; Ctrl-C stops everything.
 */
import { existsSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDicom } from '../core/dicom/parse.ts';
import { certificateSha256 } from '../core/client/federation.ts';
import { federationConfig } from '../services/common/config.ts';
import { prepareFederation, startFederation } from '../services/launcher.ts';
import { patientOf } from '../services/producer/outsourcing.ts';
import { dicomFiles, outsource, storedSummary } from './commands/outsource.ts';
import { REPO_ROOT as ROOT, samplesDir } from './samples.ts';

/** The newest modification time under a directory. */
function newest(dir: string): number {
  let t = 0;
  for (const f of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, f.name);
    t = Math.max(t, f.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

/**
 * Builds the viewer when its sources changed or when it pins another root: the federation root's
 * fingerprint is compiled into the build (ZTV_ROOT_SHA256), so the browser refuses any other root
 * from its first sign-in on (docs/viewer.md, "Pinning the root").
 */
async function buildViewer(outDir: string, rootPin: string): Promise<void> {
  const index = join(outDir, 'index.html');
  const pinFile = `${outDir}.root-pin`;
  const stale =
    !existsSync(index) ||
    !existsSync(pinFile) ||
    readFileSync(pinFile, 'utf8').trim() !== rootPin ||
    statSync(index).mtimeMs <
      Math.max(newest(join(ROOT, 'src')), statSync(join(ROOT, 'index.html')).mtimeMs);
  if (!stale || process.env.ZTV_SKIP_BUILD) return;
  console.log('building the viewer…');
  process.env.ZTV_ROOT_SHA256 = rootPin;
  const { build } = await import('vite');
  await build({ root: ROOT, logLevel: 'warn', build: { outDir, emptyOutDir: true } });
  writeFileSync(pinFile, `${rootPin}\n`);
}

/** Rows of text in aligned columns, two spaces apart, indented. */
const table = (rows: readonly (readonly string[])[]): string => {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => `  ${r.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`.trimEnd())
    .join('\n');
};

const c = federationConfig();
let samples: string;
try {
  samples = samplesDir();
} catch (e) {
  console.error(`npm start: ${(e as Error).message}`);
  process.exit(1);
}
const files = [
  ...dicomFiles(join(samples, 'series/ct_chest_LIDC-IDRI-0314')),
  ...dicomFiles(join(samples, 'series/mr_brain_mprage_FNNDSC-adi')),
  ...['CT_small.dcm', 'MR_small.dcm', 'emri_small.dcm', 'SC_rgb.dcm', 'US1_J2KR.dcm'].map((f) =>
    join(samples, 'small', f),
  ),
];
// The demo patients, as the producer files them: Dr Bob attends all of them, Nurse Carol the CT one.
const patients = [
  ...new Set(files.map((f) => patientOf(parseDicom(new Uint8Array(readFileSync(f))).dataset))),
];
const demoCare = [
  ...patients.map((p) => `dr.bob|attending|${p}`),
  `nurse.carol|care-team|${patients[0]}`,
].join(';');

await prepareFederation(c);
await buildViewer(
  c.viewerDir,
  await certificateSha256(readFileSync(join(c.pkiDir, 'ca.pem'), 'utf8')),
);
console.log(`starting the federation in ${c.dataDir}…`);
const fed = await startFederation({
  config: c,
  demoCare,
  verbose: !!process.env.ZTV_VERBOSE,
  // The cloud on every core when the database allows it (PostgreSQL; one process on SQLite).
  env: { ZTV_CLOUD_WORKERS: process.env.ZTV_CLOUD_WORKERS ?? 'auto' },
  // A service that dies is started again (and says so); one that keeps dying stops the federation.
  supervise: true,
});
void fed.failed.then((why) => {
  console.error(`\nthe federation stopped: ${why}`);
  process.exit(1);
});
// Ctrl-C reaches this process more than once (from the terminal and relayed by npm and tsx): the
// first one stops the federation, the others wait for it.
let stopping: Promise<void> | undefined;
const stop = () => {
  stopping ??= (async () => {
    console.log('\nstopping…');
    await fed.stop();
    process.exit(0);
  })();
};
process.on('SIGINT', stop);
process.on('SIGTERM', stop);

const t0 = Date.now();
const r = await outsource(fed.urls.producer, fed.secrets.stowToken, files, (done, total) => {
  process.stdout.write(`\routsourcing the sample studies: ${done}/${total}`);
});
console.log(
  `\n${storedSummary(r)} at the cloud in ${((Date.now() - t0) / 1000).toFixed(1)} s${r.failed.length ? `; refused: ${r.failed.join('; ')}` : ''}`,
);
console.log(`
ZTV federation is up.

${table([
  ['Viewer (consumer hospital)', fed.urls.consumer, ''],
  ['Producer hospital', fed.urls.producer, ''],
  ['Cloud provider', fed.urls.cloud, `internal, mutual TLS: ${fed.urls.cloudInternal}`],
  ['Central authority', fed.urls.authority, 'mutual TLS'],
  ...(c.dimse.port !== null
    ? [
        [
          'Producer DICOM node',
          `${c.dimse.aeTitle} at ${c.host}:${c.dimse.port}`,
          `C-ECHO, C-STORE${c.dimse.tls ? ' over DICOM TLS' : ''}; calling AE titles ${c.dimse.callingAeTitles.join(', ')}`,
        ],
      ]
    : []),
])}
${
  c.dimse.port !== null
    ? `
Send a study from a DICOM node (DCMTK; already stored instances are answered from the records):
  storescu -aet ${c.dimse.callingAeTitles.find((a) => a !== '*') ?? 'STORESCU'} -aec ${c.dimse.aeTitle}${c.dimse.tls ? ' +tls KEY CERT +cf CA' : ''} +sd ${c.host} ${c.dimse.port} ${join(samples, 'series/ct_chest_LIDC-IDRI-0314')}
`
    : ''
}
Demo accounts (password: ztv-demo)
${table([
  [
    'dr.bob',
    'physician',
    `attending of the ${patients.length} demo patients (find them with the study search)`,
  ],
  ['dr.alice', 'radiologist', 'may consult for research; no treatment relationship'],
  ['nurse.carol', 'nurse', "care team of the CT series' patient (working hours only)"],
  ['admin.erin', 'administrative', 'never sees images'],
  ['auditor.dave', 'auditor', 'audit trail and break-glass reviews'],
])}

Data: ${c.dataDir} (secrets.json holds the administrator and STOW tokens). Ctrl-C stops everything.
`);
