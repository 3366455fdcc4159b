/**
 * A fast reader for the one CMS shape `encryptAttributes` writes (PKI.js, BER): ContentInfo →
 * EnvelopedData v2 with a single KEK recipient (v4, key identifier only, AES-256 key wrap) and
 * AES-256-CBC content, in one primitive or in 1024-byte constructed pieces. It opens such an envelope
 * with @noble/ciphers' AES-KW and AES-CBC (about 30 µs for a slice's attributes, where PKI.js's
 * schema matching and WebCrypto round trips took about 3 ms). Anything else — another shape, another
 * algorithm, a failed unwrap or padding — returns undefined, and the caller asks PKI.js, which then
 * decides: this path only ever gives the answer PKI.js would give, for the inputs it accepts.
 */
import { aeskw, cbc } from '@noble/ciphers/aes.js';

/** A tag-length-value read at `o`: value [start, end); `next` is where the element ends. */
interface Tlv {
  readonly tag: number;
  readonly start: number;
  readonly end: number;
  readonly next: number;
  /** Indefinite length (constructed only): the value runs up to an end-of-contents (00 00). */
  readonly indefinite: boolean;
}

/** Low-tag-number BER headers only; lengths in minimal form; indefinite only for constructed. */
function tlv(b: Uint8Array, o: number, limit: number): Tlv | undefined {
  if (o + 2 > limit) return undefined;
  const tag = b[o]!;
  if ((tag & 0x1f) === 0x1f) return undefined;
  const first = b[o + 1]!;
  let len: number;
  let at = o + 2;
  if (first < 0x80) len = first;
  else if (first === 0x80) {
    if ((tag & 0x20) === 0) return undefined;
    return { tag, start: at, end: -1, next: -1, indefinite: true };
  } else {
    const n = first & 0x7f;
    if (n > 3 || at + n > limit || b[at] === 0) return undefined;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + b[at + i]!;
    if (len < 0x80 || (n > 1 && len < 1 << (8 * (n - 1)))) return undefined;
    at += n;
  }
  if (at + len > limit) return undefined;
  return { tag, start: at, end: at + len, next: at + len, indefinite: false };
}

const isEoc = (b: Uint8Array, o: number, limit: number): boolean =>
  o + 2 <= limit && b[o] === 0 && b[o + 1] === 0;

const OID_ENVELOPED = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x03);
const OID_DATA = Uint8Array.of(0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x07, 0x01);
const OID_AES256_WRAP = Uint8Array.of(0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2d);
const OID_AES256_CBC = Uint8Array.of(0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x01, 0x2a);

function sameBytes(b: Uint8Array, t: Tlv, want: Uint8Array): boolean {
  if (t.end - t.start !== want.length) return false;
  for (let i = 0; i < want.length; i++) if (b[t.start + i] !== want[i]) return false;
  return true;
}

/** The parts of the envelope that decryption needs. */
export interface KekEnvelope {
  readonly wrappedKey: Uint8Array;
  readonly iv: Uint8Array;
  readonly encrypted: Uint8Array;
}

/**
 * Parses the envelope if it has exactly the expected shape (trailing bytes after it, such as the
 * DICOM value's even-length pad, are ignored as PKI.js ignores them); undefined otherwise.
 */
export function parseKekEnvelope(b: Uint8Array): KekEnvelope | undefined {
  const n = b.length;
  /** Reads a constructed element's children with `body`, then its end (EOC when indefinite). */
  const within = <R>(
    t: Tlv,
    body: (start: number, limit: number) => { value: R; at: number } | undefined,
    limit: number,
  ): { value: R; next: number } | undefined => {
    const inner = t.indefinite ? limit : t.end;
    const r = body(t.start, inner);
    if (!r) return undefined;
    if (t.indefinite) return isEoc(b, r.at, limit) ? { value: r.value, next: r.at + 2 } : undefined;
    return r.at === t.end ? { value: r.value, next: t.next } : undefined;
  };

  const contentInfo = tlv(b, 0, n);
  if (!contentInfo || contentInfo.tag !== 0x30) return undefined;
  const parsed = within(
    contentInfo,
    (o0, lim0) => {
      const oid = tlv(b, o0, lim0);
      if (!oid || oid.tag !== 0x06 || !sameBytes(b, oid, OID_ENVELOPED)) return undefined;
      const explicit = tlv(b, oid.next, lim0);
      if (!explicit || explicit.tag !== 0xa0) return undefined;
      const r = within(
        explicit,
        (o1, lim1) => {
          const env = tlv(b, o1, lim1);
          if (!env || env.tag !== 0x30) return undefined;
          const e = within(env, (o2, lim2) => envelopedData(b, o2, lim2), lim1);
          return e ? { value: e.value, at: e.next } : undefined;
        },
        lim0,
      );
      return r ? { value: r.value, at: r.next } : undefined;
    },
    n,
  );
  return parsed?.value;
}

/** version 2, one KEK recipient, the encrypted content info; nothing else. */
function envelopedData(
  b: Uint8Array,
  o: number,
  limit: number,
): { value: KekEnvelope; at: number } | undefined {
  const version = tlv(b, o, limit);
  if (!version || version.tag !== 0x02 || version.end - version.start !== 1) return undefined;
  if (b[version.start] !== 2) return undefined;
  const set = tlv(b, version.next, limit);
  if (!set || set.tag !== 0x31 || set.indefinite) return undefined;
  // RecipientInfos: exactly one [2] KEKRecipientInfo.
  const kekri = tlv(b, set.start, set.end);
  if (!kekri || kekri.tag !== 0xa2 || kekri.indefinite || kekri.next !== set.end) return undefined;
  const kv = tlv(b, kekri.start, kekri.end);
  if (!kv || kv.tag !== 0x02 || kv.end - kv.start !== 1 || b[kv.start] !== 4) return undefined;
  const kekid = tlv(b, kv.next, kekri.end);
  if (!kekid || kekid.tag !== 0x30 || kekid.indefinite) return undefined;
  const keyIdentifier = tlv(b, kekid.start, kekid.end);
  if (!keyIdentifier || keyIdentifier.tag !== 0x04 || keyIdentifier.next !== kekid.end)
    return undefined;
  const kea = tlv(b, kekid.next, kekri.end);
  if (!kea || kea.tag !== 0x30 || kea.indefinite) return undefined;
  const keaOid = tlv(b, kea.start, kea.end);
  if (!keaOid || keaOid.tag !== 0x06 || !sameBytes(b, keaOid, OID_AES256_WRAP)) return undefined;
  if (keaOid.next !== kea.end) {
    const nul = tlv(b, keaOid.next, kea.end);
    if (!nul || nul.tag !== 0x05 || nul.end !== nul.start || nul.next !== kea.end) return undefined;
  }
  const encryptedKey = tlv(b, kea.next, kekri.end);
  if (!encryptedKey || encryptedKey.tag !== 0x04 || encryptedKey.next !== kekri.end)
    return undefined;
  if (encryptedKey.end - encryptedKey.start !== 40) return undefined;
  // EncryptedContentInfo.
  const eci = tlv(b, set.next, limit);
  if (!eci || eci.tag !== 0x30) return undefined;
  const content = (() => {
    const inner = eci.indefinite ? limit : eci.end;
    const type = tlv(b, eci.start, inner);
    if (!type || type.tag !== 0x06 || !sameBytes(b, type, OID_DATA)) return undefined;
    const alg = tlv(b, type.next, inner);
    if (!alg || alg.tag !== 0x30 || alg.indefinite) return undefined;
    const algOid = tlv(b, alg.start, alg.end);
    if (!algOid || algOid.tag !== 0x06 || !sameBytes(b, algOid, OID_AES256_CBC)) return undefined;
    const iv = tlv(b, algOid.next, alg.end);
    if (!iv || iv.tag !== 0x04 || iv.end - iv.start !== 16 || iv.next !== alg.end) return undefined;
    const ec = tlv(b, alg.next, inner);
    if (!ec) return undefined;
    let encrypted: Uint8Array;
    let at: number;
    if (ec.tag === 0x80) {
      encrypted = b.slice(ec.start, ec.end);
      at = ec.next;
    } else if (ec.tag === 0xa0) {
      // Constructed: primitive OCTET STRING pieces, concatenated.
      const pieces: Uint8Array[] = [];
      let p = ec.start;
      const end = ec.indefinite ? inner : ec.end;
      for (;;) {
        if (ec.indefinite ? isEoc(b, p, end) : p === end) break;
        const piece = tlv(b, p, end);
        if (!piece || piece.tag !== 0x04) return undefined;
        pieces.push(b.subarray(piece.start, piece.end));
        p = piece.next;
      }
      at = ec.indefinite ? p + 2 : ec.next;
      let total = 0;
      for (const x of pieces) total += x.length;
      encrypted = new Uint8Array(total);
      let w = 0;
      for (const x of pieces) {
        encrypted.set(x, w);
        w += x.length;
      }
    } else return undefined;
    return { iv: b.slice(iv.start, iv.end), encrypted, at };
  })();
  if (!content) return undefined;
  let at: number;
  if (eci.indefinite) {
    if (!isEoc(b, content.at, limit)) return undefined;
    at = content.at + 2;
  } else {
    if (content.at !== eci.end) return undefined;
    at = eci.next;
  }
  return {
    value: {
      wrappedKey: b.slice(encryptedKey.start, encryptedKey.end),
      iv: content.iv,
      encrypted: content.encrypted,
    },
    at,
  };
}

/**
 * Opens an envelope of the expected shape with `kek` (32 bytes): the plaintext, or undefined when
 * the shape differs or anything fails (then PKI.js decides, and reports the failure).
 */
export function openKekEnvelope(content: Uint8Array, kek: Uint8Array): Uint8Array | undefined {
  if (kek.length !== 32) return undefined;
  const env = parseKekEnvelope(content);
  if (!env) return undefined;
  try {
    const key = aeskw(kek).decrypt(env.wrappedKey);
    if (key.length !== 32) return undefined;
    const plain = cbc(key, env.iv).decrypt(env.encrypted);
    key.fill(0);
    return plain;
  } catch {
    return undefined;
  }
}
