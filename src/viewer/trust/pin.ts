/**
 * How the viewer pins the federation's root (docs/viewer.md, "Pinning the root"): a fingerprint built
 * into the viewer (ZTV_ROOT_SHA256 at build time) when the operator gives one; otherwise the root the
 * device was enrolled under, kept with the device keys in IndexedDB; before the first enrollment, the
 * root the hospital serves, checked at enrollment against the chain the hospital certifies the device
 * with — and pinned from then on. A changed root is refused, never silently accepted.
 */
import { certificateSha256, type TrustMaterial } from '../../core/client/federation.ts';
import { validateCertificate } from '../../core/pki/validate.ts';
import { X509Certificate, X509Crl } from '../../core/pki/x509.ts';

export type PinSource = 'build' | 'device' | 'first-use';

export interface Pin {
  readonly sha256: string;
  readonly source: PinSource;
}

/** The pin compiled into this build, if any. */
export function buildPin(): string | undefined {
  const v = typeof __ZTV_ROOT_SHA256__ === 'string' ? __ZTV_ROOT_SHA256__.trim() : '';
  return /^[0-9a-fA-F]{64}$/.test(v) ? v.toLowerCase() : undefined;
}

export class PinError extends Error {
  constructor(
    message: string,
    /** Which pin refused the root: the build's, or the one this device was enrolled under. */
    readonly pin: 'build' | 'device' = 'build',
  ) {
    super(message);
    this.name = 'PinError';
  }
}

/** The root fingerprint to trust for this sign-in, or why the served root is refused. */
export async function choosePin(
  material: TrustMaterial,
  deviceRoot: string | undefined,
  built: string | undefined = buildPin(),
): Promise<Pin> {
  const served = await certificateSha256(material.root);
  if (built) {
    if (served !== built)
      throw new PinError(
        'the hospital serves another federation root than the one this viewer was built to trust',
      );
    if (deviceRoot && deviceRoot !== built)
      throw new PinError(
        'this device was enrolled under another federation root: enrol the device again',
        'device',
      );
    return { sha256: built, source: 'build' };
  }
  if (deviceRoot) {
    if (served !== deviceRoot)
      throw new PinError(
        'the federation root changed since this device was enrolled: the viewer refuses it (ask the hospital, then enrol again)',
        'device',
      );
    return { sha256: deviceRoot, source: 'device' };
  }
  return { sha256: served, source: 'first-use' };
}

/**
 * At enrollment: the chain the hospital returns must lead to the root about to be pinned (device
 * certificate → hospital device CA → root, with CRLs), so that the first-use pin at least agrees with
 * the hospital that certified this device.
 */
export async function checkEnrolmentChain(
  material: TrustMaterial,
  chain: readonly string[],
): Promise<void> {
  const [leaf, ...rest] = chain.map((p) => new X509Certificate(p));
  if (!leaf) throw new PinError('the hospital returned no device certificate');
  const v = await validateCertificate(leaf, {
    anchors: [new X509Certificate(material.root)],
    intermediates: [...material.intermediates.map((p) => new X509Certificate(p)), ...rest],
    crls: material.crls.map((p) => new X509Crl(p)),
    usage: 'tls-client',
  });
  if (!v.ok)
    throw new PinError(`the device certificate does not lead to the federation root: ${v.reason}`);
}
