/** The tamper campaign's section of bench/reports/reliability.md: counts per region, defects, damage. */
import { inspectProtected } from '../../src/core/protect/index.ts';
import {
  damageCampaign,
  flipCampaign,
  OUTCOMES,
  REGION_NOTES,
  REGIONS,
  subjects as makeSubjects,
  type Outcome,
} from './tamper.ts';

/** Trials at scale 1: at least 10,000 flips (the issue), truncations and garbage. */
export const TAMPER_TRIALS = { flips: 12_000, truncations: 1_000, garbage: 1_000 };

const row = (cells: (string | number)[]): string => `| ${cells.join(' | ')} |`;

/** The container and trace format of a protected, traced file, as `inspectProtected` reads it. */
function formatOf(bytes: Uint8Array): string {
  const r = inspectProtected(bytes);
  const trace = r.trace?.release ? 'trace v2 (Merkle release)' : r.trace ? 'trace v1' : 'no trace';
  return `container v${r.version}, ${r.seal?.pixelKey ? 'pixel key (flag bit 1)' : 'no pixel key'}, ${trace}`;
}

export async function tamperSection(scale = 1): Promise<{ markdown: string; defects: number }> {
  const started = performance.now();
  const { keys, subjects } = await makeSubjects();
  const n = (x: number) => Math.max(1, Math.round(x * scale));
  const flips = await flipCampaign(subjects, keys, n(TAMPER_TRIALS.flips));
  const damage = await damageCampaign(
    subjects,
    keys,
    n(TAMPER_TRIALS.truncations),
    n(TAMPER_TRIALS.garbage),
  );
  const minutes = ((performance.now() - started) / 60000).toFixed(1);
  const header = row(['region', 'trials', ...OUTCOMES]);
  const rule = row(['---', '---:', ...OUTCOMES.map(() => '---:')]);
  const table = (m: Map<string, Record<Outcome, number>>): string[] => {
    const total: Record<string, number> = {};
    const lines = [...m].map(([region, c]) => {
      const trials = OUTCOMES.reduce((s, o) => s + c[o], 0);
      total.trials = (total.trials ?? 0) + trials;
      for (const o of OUTCOMES) total[o] = (total[o] ?? 0) + c[o];
      return row([region, trials, ...OUTCOMES.map((o) => c[o])]);
    });
    lines.push(
      row(['**all**', `**${total.trials}**`, ...OUTCOMES.map((o) => `**${total[o] ?? 0}**`)]),
    );
    return [header, rule, ...lines];
  };
  const defects = flips.defects.length + damage.defects.length;
  const md = [
    '## Tamper campaign',
    '',
    `${flips.trials} single-bit flips, one per trial on a fresh copy of a protected and traced file, ` +
      `over ${subjects.length} samples of every kind that protects, the region chosen in turn and the ` +
      `sample and the bit at random (seeded); every trial verified without key, every 4th ` +
      `(${flips.keyedTrials}) also opened with the image key. Then ${damage.truncations} truncations ` +
      `and ${damage.garbage} garbage inputs. ${minutes} min; slowest single verification ` +
      `${Math.max(flips.slowestMs, damage.slowestMs).toFixed(0)} ms (no hang: none over 5 s).`,
    '',
    '_detected_: verdict `tampered`; _unverifiable_: verdict `unverifiable` (a flipped key id names no ' +
      'trusted signer); _accepted_: verdict `verified` — a defect in any region, since every byte is ' +
      'covered; _refused_: a typed error (`ZtvError`: not DICOM, truncated, not protected…); _crashed_: ' +
      'any other exception — a defect.',
    '',
    '### Samples',
    '',
    'Each as protected and traced by this tree (`protect`, `traceProtected`); _format_ is what ' +
      '`inspectProtected` reads in it: the container version, whether the seal carries flag bit 1 ' +
      '(a pixel key K_p of its own), and a v2 trace is a leaf of a signed Merkle release.',
    '',
    row(['sample', 'kind', 'bytes', 'format']),
    row(['---', '---', '---:', '---']),
    ...subjects.map((s) => row([`\`${s.rel}\``, s.kind, s.bytes.length, formatOf(s.bytes)])),
    '',
    '### Flips without key, per region',
    '',
    ...table(flips.byRegion),
    '',
    '### Flips opened with the image key, per region',
    '',
    ...table(flips.keyedByRegion),
    '',
    '### What each region is and what binds it',
    '',
    row(['region', 'bound by']),
    row(['---', '---']),
    ...REGIONS.map((r) => row([r, REGION_NOTES[r]])),
    '',
    '**Bytes the seal does not cover**: none. The preamble is the only part not under a signature or ' +
      "a digest, and it must be zero (`header.encoding`): PS3.10 leaves it free, and a protected file's " +
      'is fixed so that nothing can ride in it (docs/protection.md, "Which bytes the seal covers"). What ' +
      'the seal cannot prevent by design: a trusted cloud writing another valid trace into the slot.',
    '',
    '### Unverifiable, and why',
    '',
    ...(flips.unverifiableAt.size
      ? [...flips.unverifiableAt].flatMap(([region, why]) =>
          [...why].map((w) => `- ${region}: ${w}`),
        )
      : ['None.']),
    '',
    '### Truncation and garbage',
    '',
    row(['input', 'trials', ...OUTCOMES]),
    row(['---', '---:', ...OUTCOMES.map(() => '---:')]),
    ...[...damage.byKind].map(([kind, c]) =>
      row([kind, OUTCOMES.reduce((s, o) => s + c[o], 0), ...OUTCOMES.map((o) => c[o])]),
    ),
    '',
    '### Defects',
    '',
    ...(defects
      ? [
          ...flips.defects.map(
            (d) =>
              `- \`${d.rel}\` ${d.region}, byte ${d.byte} bit ${d.bit}: ${d.detail.split('\n')[0]}`,
          ),
          ...damage.defects.map(
            (d) => `- \`${d.rel}\` ${d.kind}, ${d.length} bytes: ${d.detail.split('\n')[0]}`,
          ),
        ]
      : ['None: no flip was accepted, no input crashed the reader.']),
    '',
  ];
  return { markdown: md.join('\n'), defects };
}
