// Conformance over every sample that protects: the protected, traced and opened files each read
// without an error or a warning in DCMTK (dcmdump, dcmconv), GDCM (gdcmdump, gdcminfo) and pydicom,
// and the opened file's data set equals the source element by element, except the changes
// docs/protection.md lists for compressed sources. The files that cannot be protected are exactly
// the ones docs/protection.md lists, each refused with its error code.
//
// The external tools run in batches and two at a time (one pydicom process per half of the files);
// the test prints its wall time per stage.
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isZtvError } from '../src/core/errors.ts';
import { LOSSY_SYNTAXES, COMPRESSED_SYNTAXES } from '../src/core/dicom/codecs/index.ts';
import { TS } from '../src/core/dicom/tags.ts';
import { openProtected, protect, traceIdFrom, traceProtected } from '../src/core/protect/index.ts';
import { testKeys } from './keys.ts';
import { REPO_ROOT, SAMPLES, sampleFiles } from './samples.ts';

const SETS = [
  'small',
  'large',
  'odd',
  'series/ct_chest_LIDC-IDRI-0314',
  'series/mr_brain_mprage_FNNDSC-adi',
];

/** The samples that cannot be protected, with their error codes (docs/protection.md says why). */
const REFUSED: Record<string, string> = {
  'odd/ExplVR_BigEndNoMeta.dcm': 'unsupported',
  'odd/ExplVR_LitEndNoMeta.dcm': 'unsupported',
  'odd/GH340.dcm': 'unsupported',
  'odd/JPEG2000-embedded-sequence-delimiter.dcm': 'not-dicom',
  'odd/MR_truncated.dcm': 'truncated',
  'odd/SC_rgb_small_odd.dcm': 'capacity',
  'odd/badVR.dcm': 'capacity',
  'odd/dwv-test_no-number-rows.dcm': 'unsupported',
  'odd/meta_missing_tsyntax.dcm': 'not-dicom',
  'odd/rtplan_truncated.dcm': 'truncated',
};

/** What opening changes in the data set of a compressed source (docs/protection.md, "Decode"). */
const DECODED_FORM = ['00280004', '00280006'];
const LOSSY_MARK = '00282110';

interface Written {
  rel: string;
  source: string;
  files: string[];
  opened: string;
  allowed: string[];
  compressed: boolean;
  swap: boolean;
}

let dir: string;
const written: Written[] = [];
const refused: Record<string, string> = {};
const timings: string[] = [];

function time<T>(label: string, t0: number, v: T): T {
  timings.push(`${label}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  return v;
}

/** Runs a command; resolves with its exit code and both outputs (never rejects on a failure). */
function run(cmd: string, args: string[], input?: string) {
  return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
    const p = spawn(cmd, args, {
      stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    p.stdout!.on('data', (b: Buffer) => out.push(b));
    p.stderr!.on('data', (b: Buffer) => err.push(b));
    p.on('close', (code) =>
      resolve({
        code: code ?? -1,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
      }),
    );
    if (input !== undefined) p.stdin!.end(input);
  });
}

/** Runs jobs at most `n` at a time (the machine has two cores). */
async function pool<T>(jobs: (() => Promise<T>)[], n = 2): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (next < jobs.length) {
        const i = next++;
        out[i] = await jobs[i]!();
      }
    }),
  );
  return out;
}

const chunks = <T>(xs: T[], size: number): T[][] =>
  Array.from({ length: Math.ceil(xs.length / size) }, (_, i) => xs.slice(i * size, (i + 1) * size));

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-conformance-'));
  const keys = await testKeys();
  const t0 = performance.now();
  for (const set of SETS) {
    for (const source of sampleFiles(set)) {
      const rel = relative(SAMPLES, source);
      const input = new Uint8Array(readFileSync(source));
      let p;
      try {
        p = await protect(input, {
          signer: keys.producer,
          pseudonymKey: keys.pseudonymKey,
          what: rel,
        });
      } catch (e) {
        if (!isZtvError(e)) throw e;
        refused[rel] = e.code;
        continue;
      }
      const traced = await traceProtected(p.bytes, {
        signer: keys.cloud,
        traceId: traceIdFrom('conformance'),
      });
      const opened = await openProtected(traced, { resolver: keys.resolver, imageKey: p.imageKey });
      expect(opened.verdict.status, `${rel}: ${opened.verdict.summary}`).toBe('verified');
      const base = join(dir, rel.replace(/\.dcm$/, ''));
      mkdirSync(dirname(base), { recursive: true });
      const files = [`${base}.protected.dcm`, `${base}.traced.dcm`, `${base}.opened.dcm`];
      writeFileSync(files[0]!, p.bytes);
      writeFileSync(files[1]!, traced);
      writeFileSync(files[2]!, opened.restored!.file());
      const ts = p.report.sourceTransferSyntax;
      written.push({
        rel,
        source,
        files,
        opened: files[2]!,
        allowed: COMPRESSED_SYNTAXES.has(ts)
          ? [...DECODED_FORM, ...(LOSSY_SYNTAXES.has(ts) ? [LOSSY_MARK] : [])]
          : [],
        compressed: COMPRESSED_SYNTAXES.has(ts),
        swap: ts === TS.ExplicitBig,
      });
    }
  }
  time(`protect, trace and open ${written.length} samples`, t0, undefined);
}, 900_000);

afterAll(() => {
  if (dir && !process.env.ZTV_CONFORMANCE_KEEP) rmSync(dir, { recursive: true, force: true });
  console.log(`conformance timings:\n  ${timings.join('\n  ')}`);
});

describe('conformance of what we write, over every sample', () => {
  it('refuses exactly the samples docs/protection.md lists, each with its error', () => {
    expect(refused).toEqual(REFUSED);
    expect(written.length).toBeGreaterThan(400);
  });

  it(
    'DCMTK, GDCM and pydicom read every protected, traced and opened file cleanly; opened equals source',
    { timeout: 900_000 },
    async () => {
      const all = written.flatMap((w) => w.files);
      const sourceOf = new Map(written.flatMap((w) => w.files.map((f) => [f, w.source] as const)));
      const t0 = performance.now();

      // Each external check of one file: its messages, paths left out so that a file's can be
      // compared with its source's.
      type Check = (file: string) => Promise<string[]>;
      const strip = (text: string, file: string): string[] =>
        text
          .split('\n')
          .map((l) => l.split(file).join('<file>').trim())
          .filter((l) => l !== '');
      const dcmdumpOne: Check = async (f) => {
        const r = await run('dcmdump', ['-q', f]);
        const msgs = strip(r.stderr + r.stdout, f).filter((l) => /^[WEF]:/.test(l));
        return r.code === 0 ? msgs : [`exit ${r.code}`, ...msgs];
      };
      const dcmconvOne: Check = async (f) => {
        const r = await run('dcmconv', [f, '/dev/null']);
        const msgs = strip(r.stderr, f);
        return r.code === 0 ? msgs : [`exit ${r.code}`, ...msgs];
      };
      const gdcmOne =
        (tool: string): Check =>
        async (f) => {
          const r = await run(tool, ['-W', '-E', '-i', f]);
          const msgs = strip(r.stderr, f);
          return r.code === 0 || msgs.length > 0 ? msgs : [`exit ${r.code}`];
        };
      const found = new Map<string, Map<string, string[]>>(); // tool → file → messages
      const flag = (tool: string, file: string, msgs: string[]) => {
        if (msgs.length === 0) return;
        if (!found.has(tool)) found.set(tool, new Map());
        found.get(tool)!.set(file, msgs);
      };

      // Batched first: dcmdump reads 150 files a call, GDCM a whole sample set; files are checked
      // one by one only where a batch spoke up, to name them.
      const dcmdump = chunks(all, 150).map((batch) => async () => {
        const r = await run('dcmdump', ['-q', ...batch]);
        if (r.code === 0 && !/^[WEF]:/m.test(r.stderr + r.stdout)) return;
        for (const f of batch) flag('dcmdump', f, await dcmdumpOne(f));
      });
      const dcmconv = all.map((f) => async () => flag('dcmconv', f, await dcmconvOne(f)));
      const gdcm = ['gdcmdump', 'gdcminfo'].flatMap((tool) =>
        SETS.map((set) => async () => {
          const r = await run(tool, ['-W', '-E', '-r', '-i', join(dir, set)]);
          if (r.stderr.trim() === '' && r.code === 0) return;
          for (const f of all.filter((x) => x.startsWith(join(dir, set) + '/')))
            flag(tool, f, await gdcmOne(tool)(f));
        }),
      );
      const pyProblems: string[] = [];
      const halves = [0, 1].map((h) => written.filter((_, i) => i % 2 === h));
      const pydicom = halves.map((half) => async () => {
        const r = await run(
          '/usr/bin/python3',
          [join(REPO_ROOT, 'test/conformance.py')],
          JSON.stringify(half),
        );
        if (r.code !== 0) {
          pyProblems.push(`conformance.py exited ${r.code}: ${r.stderr}`);
          return;
        }
        for (const rec of JSON.parse(r.stdout) as { source: string; problems: string[] }[])
          for (const p of rec.problems) pyProblems.push(`${relative(SAMPLES, rec.source)}: ${p}`);
      });
      await pool([...pydicom, ...gdcm, ...dcmdump, ...dcmconv]);

      // What a tool says of a written file and also of its source is the source's (a value the
      // source holds invalid is restored as it was): only the rest counts.
      const checks: Record<string, Check> = {
        dcmdump: dcmdumpOne,
        dcmconv: dcmconvOne,
        gdcmdump: gdcmOne('gdcmdump'),
        gdcminfo: gdcmOne('gdcminfo'),
      };
      const report: string[] = [...pyProblems];
      const sourceMsgs = new Map<string, Promise<string[]>>();
      for (const [tool, files] of found)
        for (const [f, msgs] of files) {
          const src = sourceOf.get(f)!;
          const key = `${tool} ${src}`;
          if (!sourceMsgs.has(key)) sourceMsgs.set(key, checks[tool]!(src));
          const inherited = new Set(await sourceMsgs.get(key)!);
          const own = msgs.filter((m) => !inherited.has(m));
          if (own.length > 0) report.push(`${relative(dir, f)}: ${tool}: ${own.join(' | ')}`);
        }
      time(`DCMTK, GDCM and pydicom over ${all.length} files`, t0, undefined);
      if (process.env.ZTV_CONFORMANCE_REPORT)
        writeFileSync(process.env.ZTV_CONFORMANCE_REPORT, report.join('\n'));
      expect(report, report.join('\n')).toEqual([]);
    },
  );
});
