/**
 * Policy files on disk, as the services load them: each `<name>.json` beside its detached signature
 * `<name>.json.jws`. A service refuses to start on a file that is unsigned, altered, signed by an
 * organisation outside the trust group, by the cloud, or by another organisation than the one
 * accountable for it: the file's `authority.organization` must be the signer, the signer's
 * certificate must be for the file's domain, and the federation's own (outermost) file must be signed
 * by the central authority. `signPolicyDir` is what a security officer's `ztv policy sign` does, and
 * what `npm start` does for the demo policies with the demo PKI.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { fromUtf8, toBase64 } from '../../core/bytes.ts';
import { pemDecodeAll, signingKeyFromPem, type SigningKey } from '../../core/crypto/keys.ts';
import { ZtvError } from '../../core/errors.ts';
import { checkPolicyFile, type PolicyFile } from '../../core/policy/model.ts';
import {
  signPolicyFile,
  verifyPolicyFile,
  type PolicySignerResolver,
} from '../../core/policy/signature.ts';
import { writeOutput } from '../common/files.ts';

export const SIGNATURE_SUFFIX = '.jws';

/** The policy files of a directory, by name, with their bytes and signature (if any). */
export function readPolicyDir(
  dir: string,
): { name: string; bytes: Uint8Array; signature?: string }[] {
  if (!existsSync(dir))
    throw new ZtvError('bad-input', `the policy directory ${dir} does not exist`);
  return readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()
    .map((name) => {
      const sig = join(dir, name + SIGNATURE_SUFFIX);
      return {
        name,
        bytes: new Uint8Array(readFileSync(join(dir, name))),
        ...(existsSync(sig) ? { signature: readFileSync(sig, 'utf8').trim() } : {}),
      };
    });
}

/** Parents first: a domain's file after the file of the domain that encloses it. */
export function parentsFirst<T extends { parent?: string; domain: string }>(files: T[]): T[] {
  const out: T[] = [];
  const left = [...files];
  while (left.length) {
    const i = left.findIndex((f) => !f.parent || out.some((o) => o.domain === f.parent));
    out.push(...left.splice(i < 0 ? 0 : i, 1));
  }
  return out;
}

/**
 * Checks one signed file: the signature over its bytes, then who signed against what the file says
 * it is. Returns the parsed, checked file.
 */
export async function verifySignedPolicy(
  file: { name: string; bytes: Uint8Array; signature?: string },
  resolve: PolicySignerResolver,
): Promise<PolicyFile> {
  const what = `policy file ${file.name}`;
  const signer = await verifyPolicyFile(file.bytes, file.signature, resolve, what);
  let raw: unknown;
  try {
    raw = JSON.parse(fromUtf8(file.bytes));
  } catch {
    throw new ZtvError('bad-input', `${what} is not JSON`);
  }
  const p = checkPolicyFile(raw, what);
  const foreign = (why: string): never => {
    throw new ZtvError('integrity', `${what}: ${why}`);
  };
  if (signer.role === 'cloud') foreign('it is signed by the cloud, which makes no policy');
  if (signer.organization !== p.authority.organization)
    foreign(
      `it is signed by ${signer.organization}, but ${p.authority.organization} is accountable for it`,
    );
  if (signer.domain !== p.domain)
    foreign(
      `it is signed by ${signer.organization}, whose certificate is for domain ${signer.domain}, not ${p.domain}`,
    );
  if (!p.parent && signer.role !== 'authority')
    foreign('the federation policy (no enclosing domain) is signed by the central authority only');
  return p;
}

/** Every policy file of `dir`, each verified as `verifySignedPolicy` does, parents first. */
export async function loadSignedPolicies(
  dir: string,
  resolve: PolicySignerResolver,
): Promise<PolicyFile[]> {
  const files = [];
  for (const f of readPolicyDir(dir)) files.push(await verifySignedPolicy(f, resolve));
  if (files.length === 0) throw new ZtvError('bad-input', `no policy file in ${dir}`);
  return parentsFirst(files);
}

/** A signer of policy files: an organisation key and its certificate chain (PEM, leaf first). */
export interface PolicyFileSigner {
  readonly key: SigningKey;
  readonly chainPem: string;
}

export async function policyFileSigner(
  keyPem: string,
  chainPem: string,
): Promise<PolicyFileSigner> {
  return { key: await signingKeyFromPem(keyPem), chainPem };
}

/** Writes `<path>.jws`, the detached signature of the file at `path`, and returns its path. */
export async function signPolicy(
  path: string,
  signer: PolicyFileSigner,
  out = path + SIGNATURE_SUFFIX,
): Promise<string> {
  const bytes = new Uint8Array(readFileSync(path));
  checkPolicyFile(JSON.parse(fromUtf8(bytes)), `policy file ${basename(path)}`);
  const x5c = pemDecodeAll(signer.chainPem, 'CERTIFICATE').map(toBase64);
  if (x5c.length === 0) throw new ZtvError('bad-key', 'the signer has no certificate');
  writeOutput(out, `${await signPolicyFile(bytes, { key: signer.key, x5c })}\n`);
  return out;
}

/**
 * Copies the policy files of `src` to `out`, each signed by the organisation accountable for it
 * (`authority.organization`), whose key and certificate a PKI directory holds (`<org>.key.pem`,
 * `<org>.pem`): the demo federation's security officers, for `npm start` and the tests.
 */
export async function signDemoPolicies(
  src: string,
  out: string,
  pkiDir: string,
): Promise<string[]> {
  mkdirSync(out, { recursive: true, mode: 0o700 });
  const written: string[] = [];
  for (const f of readPolicyDir(src)) {
    const p = checkPolicyFile(JSON.parse(fromUtf8(f.bytes)), `policy file ${f.name}`);
    const org = p.authority.organization;
    const key = join(pkiDir, `${org}.key.pem`);
    if (!existsSync(key))
      throw new ZtvError('bad-key', `the PKI directory ${pkiDir} has no key for ${org}`);
    const target = join(out, f.name);
    writeOutput(target, f.bytes);
    written.push(
      await signPolicy(
        target,
        await policyFileSigner(
          readFileSync(key, 'utf8'),
          readFileSync(join(pkiDir, `${org}.pem`), 'utf8'),
        ),
      ),
    );
  }
  return written;
}
