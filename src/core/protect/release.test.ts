// Protocol v2 traces: one cloud signature per release over a Merkle tree of per-image trace records.
// A leaked v2 image still traces to its requester offline; a forged or swapped inclusion path, a root
// signed by another key, a leaf moved to another image and a trace of another redemption are each
// rejected with their own reason; v1 images (made here with the v1 code path) verify and open
// unchanged, alone and in a release with v2 images; and v1 and v2 give the same verdicts on the same
// tampering.
import { readFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { testKeys, type TestKeys } from '../../../test/keys.ts';
import { samplePath } from '../../../test/samples.ts';
import { randomBytes, toHex } from '../bytes.ts';
import { generateKeyPairPem, signingKeyFromPem, type SigningKey } from '../crypto/keys.ts';
import { parseDicom } from '../dicom/parse.ts';
import {
  encodeTraceSlot,
  MAX_TRACE_DEPTH,
  rootMessage,
  TRACE_SLOT_LENGTH,
  TRACE_SLOT_V2_LENGTH,
  type TraceSlotV2,
} from './container.ts';
import {
  inspectProtected,
  openProtected,
  protect,
  readProtected,
  signRelease,
  stampTraceSlot,
  traceBasis,
  traceIdFrom,
  traceRootCache,
  verifyProtected,
  writeTraceSlot,
  type SignerResolver,
  type Verdict,
} from './index.ts';
import { inclusionPaths, leafHash, pathLength, rootFromPath } from './merkle.ts';

const SLICES = ['000002', '000003', '000005', '000008'].map(
  (n) => `series/ct_chest_LIDC-IDRI-0314/${n}.dcm`,
);

let keys: TestKeys;
let other: SigningKey;
/** v2 images of one study, and their keys. */
let v2: { bytes: Uint8Array; key: Uint8Array }[];
/** The same first slice protected as v1 images were (format 1, one key for all): a v1 fixture. */
let v1: { bytes: Uint8Array; key: Uint8Array };
const traceIds = SLICES.map((_, i) => traceIdFrom(`requester-${i}`));

beforeAll(async () => {
  keys = await testKeys();
  other = await signingKeyFromPem((await generateKeyPairPem('ECDSA-P256')).privatePem);
  const inputs = SLICES.map((s) => new Uint8Array(readFileSync(samplePath(s))));
  v2 = [];
  for (const input of inputs) {
    const p = await protect(input, { signer: keys.producer, pseudonymKey: keys.pseudonymKey });
    v2.push({ bytes: p.bytes, key: p.imageKey });
  }
  const p1 = await protect(inputs[0]!, {
    signer: keys.producer,
    pseudonymKey: keys.pseudonymKey,
    format: 1,
    pixelKey: false,
  });
  v1 = { bytes: p1.bytes, key: p1.imageKey };
}, 120_000);

async function release(images: Uint8Array[], ids = traceIds, redemptionId = randomBytes(16)) {
  const signed = await signRelease(
    images.map((b, i) => ({ basis: traceBasis(b), traceId: ids[i]! })),
    { signer: keys.cloud, redemptionId },
  );
  return { ...signed, served: images.map((b, i) => writeTraceSlot(b, signed.slots[i]!)) };
}

const slotOf = (bytes: Uint8Array) => readProtected(bytes).container!.trace as TraceSlotV2;
const check = (v: Verdict, id: string) => v.checks.find((c) => c.id === id);

/** A resolver that counts the cloud-key look-ups (one per root signature verified). */
function counting(inner: SignerResolver): { resolver: SignerResolver; cloud: () => number } {
  let n = 0;
  return {
    resolver: {
      resolve: (keyId, role, at) => {
        if (role === 'cloud') n++;
        return inner.resolve(keyId, role, at);
      },
    },
    cloud: () => n,
  };
}

describe('the Merkle tree (RFC 9162)', () => {
  it('every leaf of trees of 1 to 40 leaves folds back into the root, and nowhere else', () => {
    for (let size = 1; size <= 40; size++) {
      const leaves = Array.from({ length: size }, (_, i) => leafHash(Uint8Array.of(i, size)));
      const { root, paths } = inclusionPaths(leaves);
      for (let i = 0; i < size; i++) {
        expect(paths[i]!.length).toBe(pathLength(i, size));
        expect(toHex(rootFromPath(i, size, leaves[i]!, paths[i]!)!)).toBe(toHex(root));
        // The same path at another position, a shorter or a longer one, never reaches the root.
        if (size > 1) {
          const j = (i + 1) % size;
          const r = rootFromPath(j, size, leaves[i]!, paths[i]!);
          expect(r && toHex(r)).not.toBe(toHex(root));
          expect(rootFromPath(i, size, leaves[i]!, paths[i]!.slice(1))).toBeUndefined();
          expect(rootFromPath(i, size, leaves[i]!, [...paths[i]!, root])).toBeUndefined();
        }
      }
    }
    expect(pathLength(1023, 1024)).toBe(MAX_TRACE_DEPTH);
  });
});

describe('format v2 traces', () => {
  it('protect writes v2 by default, v1 on request; slots are 532 and 128 bytes', () => {
    expect(inspectProtected(v2[0]!.bytes).version).toBe(2);
    expect(inspectProtected(v1.bytes).version).toBe(1);
    expect(TRACE_SLOT_V2_LENGTH).toBe(532);
    expect(TRACE_SLOT_LENGTH).toBe(128);
  });

  it('one signature per release: every image verifies and opens, the root is checked once per ticket', async () => {
    const rid = randomBytes(16);
    const r = await release(
      v2.map((x) => x.bytes),
      traceIds,
      rid,
    );
    expect(r.roots).toHaveLength(1);
    expect(r.roots[0]!.leaves).toBe(v2.length);
    const count = counting(keys.resolver);
    const roots = traceRootCache();
    for (const [i, served] of r.served.entries()) {
      const o = await openProtected(served, {
        resolver: count.resolver,
        imageKey: v2[i]!.key,
        traceRoots: roots,
        redemptionId: rid,
      });
      expect(o.verdict.status, o.verdict.summary).toBe('verified');
      expect(o.verdict.trace?.id).toBe(toHex(traceIds[i]!));
      expect(o.verdict.trace?.release).toEqual({
        redemption: toHex(rid),
        root: toHex(r.roots[0]!.root),
        leaf: i,
        leaves: v2.length,
      });
      for (const id of ['trace.image', 'trace.path', 'trace.signature', 'trace.release'])
        expect(check(o.verdict, id)?.result, id).toBe('pass');
    }
    expect(count.cloud()).toBe(1);
  });

  it('a leaked v2 image alone traces to its requester offline', async () => {
    const rid = randomBytes(16);
    const r = await release(
      v2.map((x) => x.bytes),
      traceIds,
      rid,
    );
    // Only the file and the cloud's public key: no ticket, no cache, no expected release.
    const leaked = new Uint8Array(r.served[2]!);
    const v = await verifyProtected(leaked, { resolver: keys.resolver });
    expect(v.status, v.summary).toBe('verified');
    expect(v.trace?.text).toBe('requester-2');
    expect(v.trace?.signer?.subject).toBe('CN=Test Cloud');
    expect(v.trace?.release?.redemption).toBe(toHex(rid));
    expect(inspectProtected(leaked).trace?.release?.leaf).toBe(2);
  });

  it('a forged inclusion path is rejected: "trace.path"', async () => {
    const r = await release(v2.map((x) => x.bytes));
    const s = slotOf(r.served[1]!);
    const path = s.path.map((p) => p.slice());
    path[0]![5]! ^= 0x10;
    const bad = writeTraceSlot(r.served[1]!, encodeTraceSlot({ ...s, path }));
    const v = await verifyProtected(bad, { resolver: keys.resolver });
    expect(v.status).toBe('tampered');
    expect(v.tampered).toEqual(['trace']);
    expect(check(v, 'trace.path')?.result).toBe('fail');
    expect(check(v, 'trace.image')?.result).toBe('pass');
    expect(check(v, 'trace.signature')?.result).toBe('pass');
  });

  it('a path swapped with another leaf\'s is rejected: "trace.path"', async () => {
    const r = await release(v2.map((x) => x.bytes));
    const a = slotOf(r.served[0]!);
    const b = slotOf(r.served[3]!);
    for (const bad of [
      { ...a, path: b.path }, // another leaf's path
      { ...a, leafIndex: b.leafIndex }, // another leaf's position
    ]) {
      const v = await verifyProtected(writeTraceSlot(r.served[0]!, encodeTraceSlot(bad)), {
        resolver: keys.resolver,
      });
      expect(v.status).toBe('tampered');
      expect(check(v, 'trace.path')?.result).toBe('fail');
    }
  });

  it('a root signed by another key is rejected: "trace.signature", or "trace.signer" when the key is named', async () => {
    const r = await release(v2.map((x) => x.bytes));
    const s = slotOf(r.served[0]!);
    // Signed by another key under the cloud's key id: the signature does not verify.
    const forged = await other.sign(rootMessage(s));
    let v = await verifyProtected(
      writeTraceSlot(r.served[0]!, encodeTraceSlot({ ...s, signature: forged })),
      { resolver: keys.resolver },
    );
    expect(v.status).toBe('tampered');
    expect(check(v, 'trace.signature')?.result).toBe('fail');
    expect(check(v, 'trace.path')?.result).toBe('pass');
    // Signed by another key under its own id: no trusted cloud has that key.
    const own = { ...s, cloudKeyId: other.publicKey.keyId };
    const signature = await other.sign(rootMessage(own));
    v = await verifyProtected(
      writeTraceSlot(r.served[0]!, encodeTraceSlot({ ...own, signature })),
      { resolver: keys.resolver },
    );
    expect(v.status).toBe('unverifiable');
    expect(check(v, 'trace.signer')?.result).toBe('unknown');
    // The producer's (trusted, but not as a cloud) key is refused for its role.
    const asProducer = { ...s, cloudKeyId: keys.producer.publicKey.keyId };
    v = await verifyProtected(
      writeTraceSlot(
        r.served[0]!,
        encodeTraceSlot({
          ...asProducer,
          signature: await keys.producer.sign(rootMessage(asProducer)),
        }),
      ),
      { resolver: keys.resolver },
    );
    expect(v.status).toBe('unverifiable');
    expect(check(v, 'trace.signer')?.detail).toMatch(/producer, not to a cloud/);
  });

  it('a leaf moved to another image is rejected: "trace.image"', async () => {
    const r = await release(v2.map((x) => x.bytes));
    // Image 1's whole slot (leaf, path, root, signature: all valid for image 1) written into image 2.
    const moved = writeTraceSlot(v2[2]!.bytes, r.slots[1]!);
    const v = await verifyProtected(moved, { resolver: keys.resolver });
    expect(v.status).toBe('tampered');
    expect(v.tampered).toEqual(['trace']);
    expect(check(v, 'trace.image')?.result).toBe('fail');
    expect(check(v, 'trace.image')?.detail).toMatch(/another image/);
  });

  it('a trace from another redemption is rejected: "trace.release", or "trace.path" when mixed', async () => {
    const images = v2.map((x) => x.bytes);
    const [ridA, ridB] = [randomBytes(16), randomBytes(16)];
    const a = await release(images, traceIds, ridA);
    const b = await release(images, traceIds.slice().reverse(), ridB);
    // B's copy retrieved under redemption A: valid in itself, not this viewer's release.
    const roots = traceRootCache();
    const v = await verifyProtected(b.served[0]!, {
      resolver: keys.resolver,
      redemptionId: ridA,
      traceRoots: roots,
    });
    expect(v.status).toBe('tampered');
    expect(check(v, 'trace.release')?.result).toBe('fail');
    expect(check(v, 'trace.release')?.detail).toMatch(/another redemption/);
    expect(check(v, 'trace.signature')?.result).toBe('pass');
    // A's leaf under B's root and signature (or B's redemption id in A's leaf): the path breaks.
    const sa = slotOf(a.served[0]!);
    const sb = slotOf(b.served[0]!);
    for (const mixed of [
      { ...sa, root: sb.root, signature: sb.signature },
      { ...sa, redemptionId: sb.redemptionId },
    ]) {
      const m = await verifyProtected(writeTraceSlot(images[0]!, encodeTraceSlot(mixed)), {
        resolver: keys.resolver,
      });
      expect(m.status).toBe('tampered');
      expect(check(m, 'trace.path')?.result).toBe('fail');
    }
  });

  it('a root verified once for a ticket does not vouch for a different root', async () => {
    const r = await release(v2.map((x) => x.bytes));
    const roots = traceRootCache();
    expect(
      (await verifyProtected(r.served[0]!, { resolver: keys.resolver, traceRoots: roots })).status,
    ).toBe('verified');
    const s = slotOf(r.served[1]!);
    const forged = { ...s, tracedAt: s.tracedAt + 1 }; // leaf and root message both change
    const v = await verifyProtected(writeTraceSlot(r.served[1]!, encodeTraceSlot(forged)), {
      resolver: keys.resolver,
      traceRoots: roots,
    });
    expect(v.status).toBe('tampered');
    expect(check(v, 'trace.path')?.result).toBe('fail');
    expect(check(v, 'trace.signature')?.result).toBe('fail');
  });
});

describe('stamping by the recorded placement', () => {
  it('writes the same file as writeTraceSlot (v1 and v2), in place, and refuses a placement that does not fit', async () => {
    for (const img of [v1.bytes, v2[0]!.bytes, v2[1]!.bytes]) {
      const basis = traceBasis(img);
      expect(basis.placement).toBeDefined();
      const [slot] = (await release([img])).slots;
      const fresh = img.slice();
      const stamped = stampTraceSlot(fresh, basis.placement!, slot!);
      expect(stamped).toBe(fresh); // in place, no copy
      expect(Buffer.from(stamped).equals(Buffer.from(writeTraceSlot(img, slot!)))).toBe(true);
      expect(() =>
        stampTraceSlot(img.slice(0, basis.placement!.offset + 8), basis.placement!, slot!),
      ).toThrow(/placement does not fit/);
      expect(() => stampTraceSlot(img.slice(), basis.placement!, slot!.subarray(8))).toThrow(
        /does not fit its placement/,
      );
    }
  });
});

describe('v1 images keep verifying and opening', () => {
  it('a v1 image traced alone, or in a release with v2 images, verifies and opens identically', async () => {
    const r = await release([v1.bytes, v2[1]!.bytes], traceIds.slice(0, 2));
    expect(r.slots[0]!.length).toBe(TRACE_SLOT_LENGTH);
    expect(r.slots[1]!.length).toBe(TRACE_SLOT_V2_LENGTH);
    const a = await openProtected(r.served[0]!, { resolver: keys.resolver, imageKey: v1.key });
    expect(a.verdict.status, a.verdict.summary).toBe('verified');
    expect(a.verdict.trace?.release).toBeUndefined();
    const b = await openProtected(
      writeTraceSlot(v2[0]!.bytes, (await release([v2[0]!.bytes])).slots[0]!),
      { resolver: keys.resolver, imageKey: v2[0]!.key },
    );
    expect(b.verdict.status).toBe('verified');
    // The same source slice, v1 and v2: the same original pixels and header come back.
    expect(Buffer.from(a.restored!.pixels).equals(Buffer.from(b.restored!.pixels))).toBe(true);
    const ta = parseDicom(a.restored!.file()).dataset.text(0x00100020);
    expect(ta).toBe(parseDicom(b.restored!.file()).dataset.text(0x00100020));
  });
});

describe('v1 and v2 verdicts on the same tampering', () => {
  /** Byte offsets of a served file by part, for one format. */
  async function served(fmt: 1 | 2) {
    const img = fmt === 1 ? v1 : v2[0]!;
    const r = await release([img.bytes]);
    const file = r.served[0]!;
    const p = readProtected(file);
    const pixelAt = p.parsed.pixelDataOffset!;
    const c = p.container!;
    return {
      file,
      pixelAt,
      pixels: p.data.length,
      L: p.L,
      wb: p.g.wordBytes,
      containerBytes: c.fields.containerBytes,
      slot: c.traceSlot.length,
      key: img.key,
    };
  }

  it('bit flips in pixels, sealed container, header and trace give the same status and parts', async () => {
    const a = await served(1);
    const b = await served(2);
    const flipAt = (f: Uint8Array, byte: number, bit: number) => {
      const out = f.slice();
      out[byte]! ^= 1 << bit;
      return out;
    };
    /** File byte and bit of container bit n. */
    const cbit = (s: typeof a, n: number): [number, number] => {
      const plane = s.L - 1 - (n % s.L);
      return [s.pixelAt + Math.floor(n / s.L) * s.wb + (plane >> 3), plane & 7];
    };
    const cases: [string, (s: typeof a) => Uint8Array][] = [
      [
        'pixels (a high bit of the last sample)',
        (s) => flipAt(s.file, s.pixelAt + s.pixels - 1, 3),
      ],
      [
        'pixels (the middle of the image)',
        (s) => flipAt(s.file, s.pixelAt + (s.pixels >> 1) + 1, 0),
      ],
      ['sealed container (the ciphertext digest)', (s) => flipAt(s.file, ...cbit(s, 200 * 8 + 3))],
      ['seal signature', (s) => flipAt(s.file, ...cbit(s, (s.containerBytes - s.slot - 10) * 8))],
      ['header (a byte of the clear data set)', (s) => flipAt(s.file, 300, 1)],
      [
        'trace id',
        (s) =>
          flipAt(
            s.file,
            ...cbit(
              s,
              (s.containerBytes - s.slot + (s.slot === TRACE_SLOT_LENGTH ? 4 : 12)) * 8 + 5,
            ),
          ),
      ],
      [
        'trace time',
        (s) =>
          flipAt(
            s.file,
            ...cbit(
              s,
              (s.containerBytes - s.slot + (s.slot === TRACE_SLOT_LENGTH ? 36 : 44)) * 8 + 63,
            ),
          ),
      ],
      [
        'trace signature',
        (s) =>
          flipAt(
            s.file,
            ...cbit(
              s,
              (s.containerBytes - s.slot + (s.slot === TRACE_SLOT_LENGTH ? 60 : 148)) * 8 + 9,
            ),
          ),
      ],
      ['trace reserved bytes', (s) => flipAt(s.file, ...cbit(s, (s.containerBytes - 1) * 8))],
    ];
    for (const [what, tamper] of cases) {
      const verdicts = await Promise.all(
        [a, b].map(async (s) => {
          const keyless = await verifyProtected(tamper(s), { resolver: keys.resolver });
          const keyed = await openProtected(tamper(s), {
            resolver: keys.resolver,
            imageKey: s.key,
          }).then(
            (o) => o.verdict,
            (e: Error) => ({ status: `error ${e.message}`, tampered: [] }),
          );
          return {
            keyless: [keyless.status, [...keyless.tampered].sort()],
            keyed: [keyed.status, [...keyed.tampered].sort()],
          };
        }),
      );
      expect(verdicts[1], what).toEqual(verdicts[0]);
      expect(verdicts[0]!.keyless[0], what).not.toBe('verified');
    }
  });
});
