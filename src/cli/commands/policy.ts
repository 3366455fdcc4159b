/**
 * `ztv policy check FILE…` validates policy files (a domain's file with its ancestors: vocabularies of
 * roles and purposes, inheritance, Cedar's strict validation) and prints each rule with its compiled
 * Cedar form — with `--pki DIR`, each file's signature too; `ztv policy sign FILE… --key --cert` writes
 * each file's detached signature; `ztv policy explain FILE… --request REQ.json` decides a request
 * described in JSON and prints the decision, the rules that made it and the obligations.
 */
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { readInput } from '../common.ts';
import { EXIT, HelpRequested, parse, requireString, UsageError } from '../common.ts';
import { fromUtf8 } from '../../core/bytes.ts';
import { ZtvError } from '../../core/errors.ts';
import { PolicyEngine, type AccessRequest } from '../../services/policy/engine.ts';
import {
  parentsFirst,
  policyFileSigner,
  signPolicy,
  SIGNATURE_SUFFIX,
  verifySignedPolicy,
} from '../../services/policy/files.ts';
import { policySignerResolver } from '../../services/policy/resolvers.ts';
import { loadPkiDir } from '../../services/common/pki-dir.ts';

/** The usage text; the request format is the one `explain` reads (docs/policy.md says the same). */
export const POLICY_USAGE = `ztv policy check FILE... [--pki DIR]
       ztv policy sign FILE... --key ORG.key.pem --cert ORG.pem
       ztv policy explain FILE... --request REQUEST.json [--domain OID]

  check    validates the policy files (each domain's file after the files of the domains that
           enclose it): roles and purposes from the declared vocabularies, inherited prohibitions
           and obligations left in force, Cedar's strict validation; prints every rule beside its
           Cedar form. With --pki DIR (a PKI directory), also verifies each FILE.jws: signed by the
           organisation the file names as authority, for the file's domain, in the trust group
  sign     the security officer signs each FILE with the organisation's key and certificate chain:
           writes FILE.jws, a detached ES256 JWS over the file's exact bytes (services refuse
           unsigned or foreign policy files)
  explain  decides the request in REQUEST.json under the policy of --domain (default: the domain
           of the last FILE) and prints the decision record as JSON; exit 0 allow, 1 deny

REQUEST.json (JSON object; only principal, activity, resource.kind and context are required):
  {
    "principal": { "id": "dr.bob", "organization": "consumer", "roles": ["physician"] },
    "activity": "consult",
    "resource": { "kind": "study", "patient": "P1", "study": "S1", "requester": "dr.carl" },
    "context": {
      "purpose": "ETREAT",
      "time": "2026-11-25T10:00:00Z",
      "emergencyJustification": "unconscious patient, suspected intracranial bleed",
      "traceInserted": false
    },
    "roleAssignments": ["<compact JWS>"],
    "delegations": [["<compact JWS, first hop>", "<next hop>"]]
  }
  principal.roles: structural roles (physician, radiologist, nurse, administrative, auditor);
  activity: an operation of the policy (search, consult, redeem, release, read-audit,
  review-break-glass); resource.kind: a view (patient-list, study, image, audit-trail, break-glass);
  resource.patient / study: pseudonymous references, for functional roles; resource.requester: who
  made the break-glass access under review; context.purpose: an HL7 v3 PurposeOfUse code of the
  domain's vocabulary (TREAT, ETREAT, HRESCH, HOPERAT, ...); context.time: ISO 8601 (default now),
  its hour taken in the domain's time zone; context.emergencyJustification: break-glass, with an
  emergency purpose (ETREAT), in words (at least 20 characters, 4 different words);
  context.traceInserted: whether the cloud has inserted the requester's trace. Offline, statements
  (roleAssignments, delegations) cannot be checked against the PKI: they are listed as refused; an
  organisation counts as a trust-group member when a policy file names it.`;

const readJson = (path: string, what: string): unknown => {
  try {
    return JSON.parse(fromUtf8(readInput(path, what)));
  } catch (e) {
    if (e instanceof ZtvError) throw e;
    throw new ZtvError('bad-input', `${what} ${path} is not JSON: ${(e as Error).message}`);
  }
};

const isObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);
const isStringArray = (v: unknown): v is string[] =>
  Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Checks the shape of REQUEST.json and turns it into an AccessRequest; one clear sentence if not. */
export function parseRequest(raw: unknown, path: string): AccessRequest {
  const bad = (why: string): never => {
    throw new ZtvError('bad-input', `request ${path}: ${why} (see ztv policy --help)`);
  };
  if (!isObject(raw)) return bad('it must be a JSON object');
  const { principal: p, activity, resource: r, context: c } = raw;
  if (!isObject(p) || typeof p.id !== 'string' || typeof p.organization !== 'string')
    bad('principal must be an object with an id and an organization (strings)');
  const principal = p as Record<string, unknown>;
  if (principal.roles !== undefined && !isStringArray(principal.roles))
    bad('principal.roles must be an array of strings');
  if (typeof activity !== 'string' || activity === '') bad('activity must be a string');
  if (!isObject(r) || typeof r.kind !== 'string') bad('resource must be an object with a kind');
  const resource = r as Record<string, unknown>;
  for (const k of ['patient', 'study', 'requester'])
    if (resource[k] !== undefined && typeof resource[k] !== 'string')
      bad(`resource.${k} must be a string`);
  if (!isObject(c)) bad('context must be an object');
  const context = c as Record<string, unknown>;
  for (const k of ['purpose', 'time', 'emergencyJustification'])
    if (context[k] !== undefined && typeof context[k] !== 'string')
      bad(`context.${k} must be a string`);
  if (context.traceInserted !== undefined && typeof context.traceInserted !== 'boolean')
    bad('context.traceInserted must be true or false');
  const time = typeof context.time === 'string' ? new Date(context.time) : undefined;
  if (time && Number.isNaN(time.getTime())) bad(`context.time ${context.time} is not a date`);
  if (raw.roleAssignments !== undefined && !isStringArray(raw.roleAssignments))
    bad('roleAssignments must be an array of compact JWS strings');
  if (
    raw.delegations !== undefined &&
    !(Array.isArray(raw.delegations) && raw.delegations.every(isStringArray))
  )
    bad('delegations must be an array of chains, each an array of compact JWS strings');
  const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);
  return {
    principal: {
      id: principal.id as string,
      organization: principal.organization as string,
      roles: (principal.roles as string[] | undefined) ?? [],
    },
    activity: activity as string,
    resource: {
      kind: resource.kind as string,
      ...(str(resource.patient) !== undefined ? { patient: str(resource.patient) } : {}),
      ...(str(resource.study) !== undefined ? { study: str(resource.study) } : {}),
      ...(str(resource.requester) !== undefined ? { requester: str(resource.requester) } : {}),
    },
    context: {
      ...(str(context.purpose) !== undefined ? { purpose: str(context.purpose) } : {}),
      ...(time ? { time } : {}),
      ...(str(context.emergencyJustification) !== undefined
        ? { emergencyJustification: str(context.emergencyJustification) }
        : {}),
      ...(typeof context.traceInserted === 'boolean'
        ? { traceInserted: context.traceInserted }
        : {}),
    },
    ...(raw.roleAssignments ? { roleAssignments: raw.roleAssignments as string[] } : {}),
    ...(raw.delegations ? { delegations: raw.delegations as string[][] } : {}),
  };
}

/**
 * Offline, no statement can be checked: they are reported as refused, never trusted. Without the
 * trust group, the organisations the policy files name (in rules or as authority) stand for it.
 */
const offline = (files: readonly unknown[]) => {
  const named = new Set<string>();
  for (const f of files as {
    authority?: { organization?: string };
    rules?: { organization?: string }[];
  }[]) {
    if (f?.authority?.organization) named.add(f.authority.organization);
    for (const r of f?.rules ?? [])
      if (r.organization && r.organization !== '*') named.add(r.organization);
  }
  return {
    resolveIssuer: async () => undefined,
    resolveClinician: async () => undefined,
    resolveOrganization: async (id: string) => (named.has(id) ? { role: 'member' } : undefined),
    holdsRole: async () => false,
  };
};

async function sign(positionals: string[], values: Record<string, unknown>, usage: string) {
  const key = requireString(values as never, 'key', usage);
  const cert = requireString(values as never, 'cert', usage);
  const signer = await policyFileSigner(
    fromUtf8(readInput(key, 'key file')),
    fromUtf8(readInput(cert, 'certificate file')),
  );
  for (const f of positionals) {
    readInput(f, 'policy file');
    console.log(`signed ${f} -> ${await signPolicy(f, signer)}`);
  }
  return EXIT.ok;
}

export async function policyCommand(args: string[]): Promise<number> {
  const usage = POLICY_USAGE;
  const [sub, ...rest] = args;
  if (sub === '--help' || sub === '-h' || sub === 'help')
    throw new HelpRequested(`usage: ${usage}`);
  if (sub !== 'check' && sub !== 'explain' && sub !== 'sign')
    throw new UsageError(
      `${sub === undefined ? 'expected a policy command' : `unknown policy command ${sub}`}\nusage: ${usage}`,
    );
  const { values, positionals } = parse(
    rest,
    {
      request: { type: 'string' },
      domain: { type: 'string' },
      pki: { type: 'string' },
      key: { type: 'string' },
      cert: { type: 'string' },
    },
    usage,
  );
  if (positionals.length === 0) throw new UsageError(`expected policy files\nusage: ${usage}`);
  if (sub === 'sign') return sign(positionals, values, usage);
  let raw = positionals.map((f) => readJson(f, 'policy file'));
  if (sub === 'check' && typeof values.pki === 'string') {
    const pki = await loadPkiDir(values.pki);
    const resolve = policySignerResolver(() => pki);
    for (const f of positionals) {
      let signature: string | undefined;
      try {
        signature = readFileSync(f + SIGNATURE_SUFFIX, 'utf8').trim();
      } catch {
        signature = undefined;
      }
      const p = await verifySignedPolicy(
        {
          name: basename(f),
          bytes: readInput(f, 'policy file'),
          ...(signature ? { signature } : {}),
        },
        resolve,
      );
      console.log(`# ${f}: signed by ${p.authority.organization} (${p.authority.officer})`);
    }
  }
  raw = parentsFirst(raw as { domain: string; parent?: string }[]);
  const engine = await PolicyEngine.load(raw, offline(raw));
  const last = engine.files.at(-1)!;
  if (sub === 'check') {
    for (const f of engine.files) {
      console.log(
        `# ${f.id} v${f.version} — ${f.name}\n# domain ${f.domain}${f.parent ? ` (in ${f.parent})` : ''}; authority: ${f.authority.organization}, ${f.authority.officer}`,
      );
      const roles = Object.keys(f.roles ?? {});
      const purposes = Object.keys(f.purposes ?? {});
      if (roles.length) console.log(`# roles: ${roles.join(', ')}`);
      if (purposes.length) console.log(`# purposes of use: ${purposes.join(', ')}`);
      const compiled = engine.compiled(f.domain);
      for (const r of f.rules) {
        const text = compiled.access[r.id] ?? compiled.obligations[r.id];
        console.log(`\n// ${r.id} (${r.type}): ${r.description}\n${text}`);
      }
      console.log('');
    }
    console.log(
      `ok: ${engine.files.length} policy file(s), ${engine.files.reduce((n, f) => n + f.rules.length, 0)} rules, valid for Cedar in strict mode`,
    );
    return EXIT.ok;
  }
  const path = requireString(values, 'request', usage);
  const request = parseRequest(readJson(path, 'request'), path);
  const domain = typeof values.domain === 'string' ? values.domain : last.domain;
  const d = await engine.decide(domain, request);
  console.log(JSON.stringify(d, null, 2));
  return d.decision === 'allow' ? EXIT.ok : EXIT.tampered;
}
