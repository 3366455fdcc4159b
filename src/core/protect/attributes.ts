/**
 * The Encrypted Attributes Sequence (0400,0500): the originals of de-identified attributes, as a
 * Modified Attributes Sequence (0400,0550) data set, in CMS EnvelopedData (PS3.15 C.12.1.1.4.2) made
 * with PKI.js: a KEK recipient (RFC 5652 kekri, AES-256 key wrap) whose key is derived from the image
 * key with HKDF, content in AES-256-CBC. openssl `cms -decrypt -secretkey` opens it too. Integrity
 * comes from the producer's seal, which binds the encrypted bytes and the restored header.
 */
import * as pkijs from 'pkijs';
import { exactCopy, utf8 } from '../bytes.ts';
import { hkdfSha256 } from '../crypto/hash.ts';
import { DataSet, type DicomElement } from '../dicom/dataset.ts';
import { parseDicom } from '../dicom/parse.ts';
import { T, TS } from '../dicom/tags.ts';
import { writeDataSet } from '../dicom/write.ts';
import { openKekEnvelope } from './envelope.ts';
import { ZtvError } from '../errors.ts';

/** Key identifier of the KEK recipient: says which derivation made the key. */
export const KEK_ID = utf8('ZTV attributes KEK v1');

/** Private block inside the encrypted data set: the tags de-identification added (AT values). */
const PRIVATE_CREATOR = 0x00090010;
const ADDED_TAGS = 0x00091010;
const CREATOR = 'ZTV 1';

export const attributesKek = (imageKey: Uint8Array, iv: Uint8Array): Uint8Array =>
  hkdfSha256(imageKey, iv, 'ZTV/attributes-kek/v1', 32);

function encodeAt(tags: readonly number[]): Uint8Array {
  const out = new Uint8Array(tags.length * 4);
  const dv = new DataView(out.buffer);
  tags.forEach((t, i) => {
    dv.setUint16(4 * i, t >>> 16, true);
    dv.setUint16(4 * i + 2, t & 0xffff, true);
  });
  return out;
}

function decodeAt(b: Uint8Array): number[] {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: number[] = [];
  for (let i = 0; i + 4 <= b.length; i += 4)
    out.push(((dv.getUint16(i, true) << 16) | dv.getUint16(i + 2, true)) >>> 0);
  return out;
}

/** Builds the (0400,0500) element holding `originals` and `added`, encrypted for `imageKey`. */
export async function encryptAttributes(
  originals: DataSet,
  added: readonly number[],
  imageKey: Uint8Array,
  iv: Uint8Array,
): Promise<DicomElement> {
  const inner = new DataSet();
  inner.set({ tag: T.ModifiedAttributesSequence, vr: 'SQ', items: [originals] });
  inner.setText(PRIVATE_CREATOR, 'LO', CREATOR);
  inner.set({ tag: ADDED_TAGS, vr: 'AT', value: encodeAt(added) });
  const env = new pkijs.EnvelopedData();
  env.addRecipientByPreDefinedData(
    exactCopy(attributesKek(imageKey, iv)).buffer,
    {
      keyIdentifier: exactCopy(KEK_ID).buffer,
      keyEncryptionAlgorithm: { name: 'AES-KW', length: 256 },
    },
    1,
  );
  await env.encrypt(
    { name: 'AES-CBC', length: 256 } as Algorithm,
    exactCopy(writeDataSet(inner)).buffer,
  );
  const ci = new pkijs.ContentInfo({
    contentType: pkijs.ContentInfo.ENVELOPED_DATA,
    content: env.toSchema(),
  });
  const item = new DataSet();
  item.setText(T.EncryptedContentTransferSyntaxUID, 'UI', TS.ExplicitLittle);
  item.set({
    tag: T.EncryptedContent,
    vr: 'OB',
    value: new Uint8Array(ci.toSchema().toBER(false)),
  });
  return { tag: T.EncryptedAttributesSequence, vr: 'SQ', items: [item] };
}

export interface OpenedAttributes {
  readonly originals: DataSet;
  readonly added: number[];
}

/** PKI.js's reading of an EnvelopedData with a KEK recipient (the general path, and the judge). */
export async function openWithPkijs(content: Uint8Array, kek: Uint8Array): Promise<Uint8Array> {
  try {
    const ci = pkijs.ContentInfo.fromBER(exactCopy(content).buffer);
    const env = new pkijs.EnvelopedData({ schema: ci.content });
    return new Uint8Array(await env.decrypt(0, { preDefinedData: exactCopy(kek).buffer }));
  } catch {
    throw new ZtvError('integrity', 'the encrypted attributes do not decrypt with this image key');
  }
}

/**
 * Decrypts our item of the Encrypted Attributes Sequence: the envelope this module writes is read
 * directly (envelope.ts), any other through PKI.js; throws 'integrity' if it does not open.
 */
export async function decryptAttributes(
  ds: DataSet,
  imageKey: Uint8Array,
  iv: Uint8Array,
): Promise<OpenedAttributes> {
  const seq = ds.get(T.EncryptedAttributesSequence);
  const item = seq?.items?.find(
    (it) => it.text(T.EncryptedContentTransferSyntaxUID) === TS.ExplicitLittle,
  );
  const content = item?.get(T.EncryptedContent)?.value;
  if (!content)
    throw new ZtvError('integrity', 'the Encrypted Attributes Sequence (0400,0500) is missing');
  const kek = attributesKek(imageKey, iv);
  let plain = openKekEnvelope(content, kek);
  if (!plain) plain = await openWithPkijs(content, kek);
  kek.fill(0);
  let inner: DataSet;
  try {
    inner = parseDicom(plain, 'the encrypted attributes', {
      bareSyntax: TS.ExplicitLittle,
    }).dataset;
  } catch {
    throw new ZtvError('integrity', 'the decrypted attributes are not a DICOM data set');
  }
  const originals = inner.get(T.ModifiedAttributesSequence)?.items?.[0];
  if (!originals || inner.text(PRIVATE_CREATOR) !== CREATOR)
    throw new ZtvError(
      'integrity',
      'the decrypted attributes lack the Modified Attributes Sequence',
    );
  return { originals, added: decodeAt(inner.get(ADDED_TAGS)?.value ?? new Uint8Array(0)) };
}
