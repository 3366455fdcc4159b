// The `ztv` command line as operators use it: real processes, real files. Happy path end to end, then
// every user error gives one clear line on stderr, a non-zero exit, no stack trace and no output file.
import { spawnSync } from 'node:child_process';
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, samplePath } from '../../test/samples.ts';
import { parseDicom } from '../core/dicom/parse.ts';
import { pixelInfoOf } from '../core/dicom/pixels.ts';
import { writeRegionBits } from '../core/protect/container.ts';
import { geometryOf } from '../core/protect/geometry.ts';
import { writeOutputs } from '../services/common/files.ts';

const BIN = join(REPO_ROOT, 'bin/ztv.js');
let dir: string;
const ztv = (...args: string[]) => {
  const r = spawnSync(process.execPath, [BIN, ...args], { encoding: 'utf8', cwd: dir });
  return { code: r.status, out: r.stdout, err: r.stderr };
};
const p = (f: string) => join(dir, f);

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'ztv-cli-'));
  expect(ztv('dev-keys', p('keys')).code).toBe(0);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('ztv happy path', () => {
  it('protect → trace → verify (0) → open restores the original pixels', () => {
    const src = samplePath('series/ct_chest_LIDC-IDRI-0314/000002.dcm');
    const r1 = ztv('protect', '--keys', p('keys'), src, p('p.dcm'), '--key-out', p('k.json'));
    expect(r1.code, r1.err).toBe(0);
    expect(statSync(p('k.json')).mode & 0o777).toBe(0o600);
    expect(r1.out + r1.err).not.toContain(JSON.parse(readFileSync(p('k.json'), 'utf8')).key);
    expect(
      ztv('trace', '--keys', p('keys'), '--trace', 'ticket-9', p('p.dcm'), p('t.dcm')).code,
    ).toBe(0);
    const v = ztv('verify', '--keys', p('keys'), p('t.dcm'));
    expect(v.code).toBe(0);
    expect(JSON.parse(v.out).status).toBe('verified');
    const vk = ztv('verify', '--keys', p('keys'), '--image-key', p('k.json'), p('t.dcm'));
    expect(JSON.parse(vk.out).keyed).toBe(true);
    expect(
      ztv('open', '--keys', p('keys'), '--image-key', p('k.json'), p('t.dcm'), p('o.dcm')).code,
    ).toBe(0);
    const inspect = JSON.parse(ztv('inspect', p('t.dcm')).out);
    expect(inspect.trace.id).toMatch(/^7469636b65742d39/); // "ticket-9"
    expect(readFileSync(p('o.dcm')).length).toBeGreaterThan(500_000);
  });

  it('verify exits 1 on a tampered image and 2 when it cannot verify', () => {
    const bytes = readFileSync(p('t.dcm'));
    bytes[bytes.length - 1000]! ^= 0x80; // an encrypted pixel bit
    writeFileSync(p('bad.dcm'), bytes);
    const v = ztv('verify', '--keys', p('keys'), p('bad.dcm'));
    expect(v.code).toBe(1);
    expect(JSON.parse(v.out).tampered).toEqual(['pixels']);
    expect(ztv('dev-keys', p('other')).code).toBe(0);
    expect(ztv('verify', '--keys', p('other'), p('t.dcm')).code).toBe(2);
    // open refuses to write a tampered original unless asked
    expect(
      ztv('open', '--keys', p('keys'), '--image-key', p('k.json'), p('bad.dcm'), p('bad-open.dcm'))
        .code,
    ).toBe(1);
    expect(existsSync(p('bad-open.dcm'))).toBe(false);
  });

  it('verify exits 2 on a container of a format version it does not read', () => {
    const bytes = new Uint8Array(readFileSync(p('t.dcm')));
    const parsed = parseDicom(bytes);
    const g = geometryOf(pixelInfoOf(parsed.dataset));
    const L = JSON.parse(ztv('inspect', p('t.dcm')).out).layout.planes as number;
    // The version field: container bytes 4–5, i.e. container bits 32–47, in R's low planes.
    writeRegionBits(bytes.subarray(parsed.pixelDataOffset!), g, L, Uint8Array.of(0, 3), 32, 16);
    writeFileSync(p('v3.dcm'), bytes);
    const v = ztv('verify', '--keys', p('keys'), '--image-key', p('k.json'), p('v3.dcm'));
    expect(v.code, v.err).toBe(2);
    const verdict = JSON.parse(v.out);
    expect(verdict.status).toBe('unverifiable');
    expect(verdict.summary).toMatch(/container has version 3, which this build does not read/);
    expect(
      ztv('open', '--keys', p('keys'), '--image-key', p('k.json'), p('v3.dcm'), p('v3-open.dcm'))
        .code,
    ).toBe(2);
    expect(existsSync(p('v3-open.dcm'))).toBe(false);
  });
});

describe('ztv over folders', () => {
  it('protect, verify and open take folders: trees mirrored, one line per failure, a summary, exit by the worst', () => {
    const input = p('tree-in');
    mkdirSync(join(input, 'a'), { recursive: true });
    mkdirSync(join(input, 'b'), { recursive: true });
    writeFileSync(join(input, 'a/mr.dcm'), readFileSync(samplePath('small/MR_small.dcm')));
    writeFileSync(join(input, 'b/ct'), readFileSync(samplePath('small/CT_small.dcm')));
    // Too small to carry a container: a failure that must not stop the run.
    writeFileSync(join(input, 'b/tiny.dcm'), readFileSync(samplePath('odd/SC_rgb_small_odd.dcm')));
    writeFileSync(join(input, 'notes.txt'), 'not DICOM: left alone');

    const prot = ztv('protect', '--keys', p('keys'), input, p('tree-p'), '--key-out', p('tree-k'));
    expect(prot.code).toBe(3);
    const failures = prot.err.trim().split('\n');
    expect(failures).toEqual([
      expect.stringMatching(
        /^ztv protect: b\/tiny\.dcm: the image cannot carry the protection container/,
      ),
      'ztv protect: 2 of 3 files protected, 1 failed',
    ]);
    expect(existsSync(p('tree-p/a/mr.dcm')) && existsSync(p('tree-p/b/ct'))).toBe(true);
    expect(existsSync(p('tree-p/b/tiny.dcm'))).toBe(false);
    expect(statSync(p('tree-k/a/mr.dcm.key.json')).mode & 0o777).toBe(0o600);

    const v = ztv('verify', '--keys', p('keys'), '--image-key', p('tree-k'), p('tree-p'));
    expect(v.code, v.err).toBe(0);
    const lines = v.out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { file: string; status: string });
    expect(lines.map((l) => [l.file, l.status])).toEqual([
      ['a/mr.dcm', 'verified'],
      ['b/ct', 'verified'],
    ]);
    expect(v.err.trim()).toBe('ztv verify: 2 of 2 files verified, 0 failed');

    const o = ztv(
      'open',
      '--keys',
      p('keys'),
      '--image-key',
      p('tree-k'),
      p('tree-p'),
      p('tree-o'),
    );
    expect(o.code, o.err).toBe(0);
    const restored = parseDicom(new Uint8Array(readFileSync(p('tree-o/a/mr.dcm'))));
    const source = parseDicom(new Uint8Array(readFileSync(samplePath('small/MR_small.dcm'))));
    expect(restored.dataset.text(0x00100010)).toBe(source.dataset.text(0x00100010));

    // One tampered file: verify names it and exits 1; the others still verify.
    const bad = readFileSync(p('tree-p/b/ct'));
    bad[300] = bad[300]! ^ 0x01;
    writeFileSync(p('tree-p/b/ct'), bad);
    const t = ztv('verify', '--keys', p('keys'), p('tree-p'));
    expect(t.code).toBe(1);
    expect(t.err).toMatch(/^ztv verify: b\/ct: tampered/m);
    expect(t.err).toMatch(/ztv verify: 1 of 2 files verified, 1 failed/);

    // Output inside the input folder is refused before anything is written.
    const inside = ztv(
      'protect',
      '--keys',
      p('keys'),
      input,
      join(input, 'out'),
      '--key-out',
      p('k2'),
    );
    expect(inside.code).toBe(64);
    expect(existsSync(join(input, 'out'))).toBe(false);
  });
});

describe('ztv with a PKI directory', () => {
  it('pki init makes a PKI that protect, trace and verify use; verify names the certified signers', () => {
    expect(ztv('pki', 'init', p('pki')).code).toBe(0);
    expect(statSync(p('pki/ca.key.pem')).mode & 0o777).toBe(0o600);
    expect(ztv('pki', 'init', p('pki')).err).toMatch(/already holds a PKI/);
    const src = samplePath('small/CT_small.dcm');
    expect(
      ztv('protect', '--keys', p('pki'), src, p('pp.dcm'), '--key-out', p('pk.json')).code,
    ).toBe(0);
    expect(ztv('trace', '--keys', p('pki'), '--trace', 'T-1', p('pp.dcm'), p('pt.dcm')).code).toBe(
      0,
    );
    const v = JSON.parse(ztv('verify', '--keys', p('pki'), p('pt.dcm')).out);
    expect(v.status).toBe('verified');
    expect(v.seal.signer.subject).toMatch(/CN=Saint-Louis Producer Hospital/);
    expect(v.seal.signer.chain[1]).toMatch(/CN=ZTV Federation Root CA/);
    expect(v.trace.signer.subject).toMatch(/CN=Nimbus Imaging Cloud/);
    const show = JSON.parse(ztv('pki', 'show', p('pki')).out);
    expect(show.trustGroup.version).toBe(1);
  });
});

describe('ztv user errors', () => {
  const cases: [string, () => string[], RegExp][] = [
    [
      'missing input file',
      () => ['protect', '--keys', p('keys'), p('nope.dcm'), p('x1.dcm'), '--key-out', p('x1.json')],
      /does not exist/,
    ],
    [
      'not DICOM',
      () => ['protect', '--keys', p('keys'), p('text.txt'), p('x2.dcm'), '--key-out', p('x2.json')],
      /not DICOM/,
    ],
    [
      'truncated',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('odd/MR_truncated.dcm'),
        p('x3.dcm'),
        '--key-out',
        p('x3.json'),
      ],
      /truncated/,
    ],
    [
      'unsupported syntax',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('odd/GH340.dcm'),
        p('x4.dcm'),
        '--key-out',
        p('x4.json'),
      ],
      /not supported/,
    ],
    [
      'image too small',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('odd/SC_rgb_small_odd.dcm'),
        p('x5.dcm'),
        '--key-out',
        p('x5.json'),
      ],
      /cannot carry the protection container: it needs at least \d+ bits/,
    ],
    [
      'wrong key',
      () => ['open', '--keys', p('keys'), '--image-key', p('wrong.json'), p('t.dcm'), p('x6.dcm')],
      /does not open this image/,
    ],
    [
      'no keys dir',
      () => [
        'protect',
        '--keys',
        p('nokeys'),
        samplePath('small/CT_small.dcm'),
        p('x7.dcm'),
        '--key-out',
        p('x7.json'),
      ],
      /does not exist/,
    ],
    [
      'plain DICOM to verify',
      () => ['verify', '--keys', p('keys'), samplePath('small/CT_small.dcm')],
      /carries no protection container|not a protected image/,
    ],
    ['unknown flag', () => ['protect', '--bogus'], /Unknown option/],
    // Output paths that cannot be written: one line, and neither the image nor its key is left.
    [
      'output under a regular file',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('small/CT_small.dcm'),
        p('afile/out.dcm'),
        '--key-out',
        p('x8.json'),
      ],
      /^ztv protect: cannot write .*afile\/out\.dcm: .*afile is a file, not a directory$/,
    ],
    [
      'key file under a regular file',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('small/CT_small.dcm'),
        p('x9.dcm'),
        '--key-out',
        p('afile/k.json'),
      ],
      /^ztv protect: cannot write .*afile\/k\.json: .*afile is a file, not a directory$/,
    ],
    [
      'key file is a directory',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('small/CT_small.dcm'),
        p('x10.dcm'),
        '--key-out',
        p('adir'),
      ],
      /cannot write .*adir: it is a directory/,
    ],
    [
      'image and key the same file',
      () => [
        'protect',
        '--keys',
        p('keys'),
        samplePath('small/CT_small.dcm'),
        p('x11.dcm'),
        '--key-out',
        p('x11.dcm'),
      ],
      /must be different files/,
    ],
    [
      'trace output under a regular file',
      () => ['trace', '--keys', p('keys'), '--trace', 'T', p('p.dcm'), p('afile/t.dcm')],
      /^ztv trace: cannot write .*afile\/t\.dcm: .*afile is a file, not a directory$/,
    ],
    [
      'open output under a regular file',
      () => ['open', '--keys', p('keys'), '--image-key', p('k.json'), p('t.dcm'), p('afile/o.dcm')],
      /^ztv open: cannot write .*afile\/o\.dcm: .*afile is a file, not a directory$/,
    ],
    [
      'dev-keys into a regular file',
      () => ['dev-keys', p('afile')],
      /cannot create the directory .*afile: .*afile is a file, not a directory/,
    ],
    [
      'pki init under a regular file',
      () => ['pki', 'init', p('afile/pki')],
      /cannot write a PKI to .*afile\/pki: .*afile is a file, not a directory/,
    ],
    [
      'policy request of the wrong shape',
      () => [
        'policy',
        'explain',
        join(REPO_ROOT, 'policies/federation.json'),
        '--request',
        p('bad-request.json'),
      ],
      /^ztv policy: request .*bad-request\.json: principal\.roles must be an array of strings/,
    ],
  ];
  beforeAll(() => {
    writeFileSync(p('afile'), 'a regular file where a directory is expected\n');
    mkdirSync(p('adir'));
    writeFileSync(
      p('bad-request.json'),
      JSON.stringify({
        principal: { id: 'dr.bob', organization: 'consumer', roles: 'physician' },
        activity: 'consult',
        resource: { kind: 'study' },
        context: {},
      }),
    );
    writeFileSync(p('text.txt'), 'hello, this is not an image\n'.repeat(20));
    const k = JSON.parse(readFileSync(p('k.json'), 'utf8'));
    k.key = Buffer.alloc(32, 7).toString('base64url');
    writeFileSync(p('wrong.json'), JSON.stringify(k));
  });

  it.each(cases)('%s', (_name, args, message) => {
    const before = new Set(readdirSync(dir));
    const r = ztv(...args());
    expect(r.code).not.toBe(0);
    const lines = r.err.trim().split('\n');
    expect(lines[0]).toMatch(message);
    expect(r.err).not.toMatch(/\n\s+at |Error:/); // no stack trace
    expect(readdirSync(dir).filter((f) => !before.has(f))).toEqual([]); // no output, not even partial
    expect(readdirSync(p('adir'))).toEqual([]);
  });

  it('a failed image write leaves no key file, and a failed key write no image (writeOutputs)', () => {
    // Staged together, placed in order: the second output failing takes the first one back.
    const before = new Set(readdirSync(dir));
    expect(() =>
      writeOutputs([
        { path: p('first.dcm'), data: 'image' },
        { path: p('afile/second.json'), data: 'key', mode: 0o600 },
      ]),
    ).toThrow(/cannot write .*afile\/second\.json: .*afile is a file, not a directory/);
    expect(() =>
      writeOutputs([
        { path: p('afile/first.dcm'), data: 'image' },
        { path: p('second.json'), data: 'key', mode: 0o600 },
      ]),
    ).toThrow(/afile is a file, not a directory/);
    expect(readdirSync(dir).filter((f) => !before.has(f))).toEqual([]); // no temporary file either
    writeOutputs([
      { path: p('w/first.dcm'), data: 'image' },
      { path: p('w/second.json'), data: 'key', mode: 0o600 },
    ]);
    expect(readFileSync(p('w/first.dcm'), 'utf8')).toBe('image');
    expect(statSync(p('w/second.json')).mode & 0o777).toBe(0o600);
    expect(readdirSync(p('w')).sort()).toEqual(['first.dcm', 'second.json']);
  });
});

describe('ztv help', () => {
  it.each([['pki'], ['policy']])('ztv %s --help prints its usage on stdout and exits 0', (cmd) => {
    for (const flag of ['--help', '-h']) {
      const r = ztv(cmd, flag);
      expect(r.code, r.err).toBe(0);
      expect(r.err).toBe('');
      expect(r.out).toMatch(new RegExp(`^usage: ztv ${cmd} `));
      expect(r.out).not.toMatch(/unknown/);
    }
    expect(ztv(cmd).code).toBe(64); // no sub-command at all is still a usage error
    expect(ztv(cmd, 'bogus').err).toMatch(new RegExp(`unknown ${cmd} command bogus`));
  });

  it('ztv policy --help documents the request format of explain, and that example decides', () => {
    const help = ztv('policy', '--help').out;
    for (const field of [
      'principal',
      'organization',
      'roles',
      'activity',
      'resource',
      'kind',
      'context',
      'purpose',
      'time',
      'emergencyJustification',
      'traceInserted',
      'roleAssignments',
      'delegations',
    ])
      expect(help).toContain(`"${field}"`);
    // The example in the usage text is a request `explain` reads as it is.
    const example = help.slice(help.indexOf('\n  {\n'), help.indexOf('\n  }\n') + 4);
    writeFileSync(p('help-request.json'), example);
    const r = ztv(
      'policy',
      'explain',
      join(REPO_ROOT, 'policies/federation.json'),
      join(REPO_ROOT, 'policies/producer-hospital.json'),
      '--request',
      p('help-request.json'),
    );
    expect(r.code, r.err).toBe(0);
    const d = JSON.parse(r.out);
    expect(d.decision).toBe('allow');
    expect(d.rules).toEqual(['BREAK-GLASS']); // a physician, with a typed justification
    expect(d.refusedStatements).toHaveLength(2); // the placeholder statements, never trusted
  });
});
