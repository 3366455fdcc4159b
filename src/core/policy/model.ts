/**
 * The OrBAC policy model, as security officers write it: versioned policy files, one per policy domain
 * (ISO/TS 22600-2: policy id, name, authority, domain, targets, operations), whose rules are
 * permissions, prohibitions and obligations of the form (organisation, role, activity, view, context).
 * A domain nested in another inherits its parent's rules and may refine them (a rule with the same id
 * replaces the parent's). Files are checked here, before anything is compiled.
 */
import { ZtvError } from '../errors.ts';

export const POLICY_FORMAT = 'ztv-policy/1';

/** Contexts the platform computes for every request (docs/policy.md says how). */
export const CONTEXTS = [
  'default',
  'treatment',
  'working-hours',
  'outside-working-hours',
  'emergency',
  'watermark-update',
  'own-request',
  'delegated',
  'clinical-role',
] as const;
export type ContextName = (typeof CONTEXTS)[number] | `purpose:${string}`;

export type RuleType = 'permission' | 'prohibition' | 'obligation';

/** When an obligation must be carried out: before the access (pre) or after it (post). */
export type ObligationTiming = 'pre' | 'post';

export interface Obligation {
  readonly id: string;
  readonly timing: ObligationTiming;
}

export interface Rule {
  readonly id: string;
  readonly type: RuleType;
  /** Trust-group member id of the requester's organisation, or "*". */
  readonly organization: string;
  /** Structural role (physician, radiologist, nurse, administrative, auditor), functional role, or "*". */
  readonly role: string;
  /** An operation of the policy, or "*" for all. */
  readonly activity: string;
  /** A target of the policy, or "*" for all. */
  readonly view: string;
  readonly context: ContextName;
  /** Prohibitions only: contexts in which the prohibition does not apply (e.g. emergency). */
  readonly except?: readonly ContextName[];
  /** Permissions: obligations that come with the access. Obligation rules: the one they impose. */
  readonly obligations?: readonly Obligation[];
  /** The rule in plain words, for the security officer. */
  readonly description: string;
}

export interface PolicyFile {
  readonly format: typeof POLICY_FORMAT;
  readonly id: string;
  readonly name: string;
  readonly version: number;
  /** Who is accountable for the policy. */
  readonly authority: string;
  /** Policy domain OID; `parent` is the enclosing domain's. */
  readonly domain: string;
  readonly parent?: string;
  /** IANA time zone of the domain's hospital, for working hours. */
  readonly timeZone?: string;
  readonly workingHours?: { readonly start: number; readonly end: number };
  /** Views (targets) and activities (operations) the rules may name. */
  readonly targets: readonly string[];
  readonly operations: readonly string[];
  readonly rules: readonly Rule[];
}

const NAME = /^[a-z][a-z0-9-]{0,40}$/;
const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;

function isContext(c: unknown): c is ContextName {
  return (
    typeof c === 'string' &&
    ((CONTEXTS as readonly string[]).includes(c) || /^purpose:[a-z][a-z0-9-]{0,40}$/.test(c))
  );
}

/** Checks a parsed policy file; every problem is named with the rule it is in. */
export function checkPolicyFile(v: unknown, what = 'the policy file'): PolicyFile {
  const fail = (why: string): never => {
    throw new ZtvError('bad-input', `${what}: ${why}`);
  };
  if (!v || typeof v !== 'object') fail('is not a JSON object');
  const p = v as Record<string, unknown>;
  if (p.format !== POLICY_FORMAT) fail(`format must be "${POLICY_FORMAT}"`);
  for (const k of ['id', 'name', 'authority'] as const)
    if (typeof p[k] !== 'string' || !(p[k] as string).trim()) fail(`"${k}" is required`);
  if (!Number.isInteger(p.version) || (p.version as number) < 1)
    fail('"version" must be a positive integer');
  if (typeof p.domain !== 'string' || !OID.test(p.domain)) fail('"domain" must be an OID');
  if (p.parent !== undefined && (typeof p.parent !== 'string' || !OID.test(p.parent)))
    fail('"parent" must be an OID');
  if (p.timeZone !== undefined) {
    try {
      new Intl.DateTimeFormat('en', { timeZone: p.timeZone as string });
    } catch {
      fail(`"timeZone" ${String(p.timeZone)} is not an IANA time zone`);
    }
  }
  if (p.workingHours !== undefined) {
    const h = p.workingHours as { start?: unknown; end?: unknown };
    if (
      !Number.isInteger(h.start) ||
      !Number.isInteger(h.end) ||
      (h.start as number) < 0 ||
      (h.end as number) > 24 ||
      (h.start as number) >= (h.end as number)
    )
      fail('"workingHours" must be { start, end } hours with 0 ≤ start < end ≤ 24');
  }
  const names = (k: 'targets' | 'operations') => {
    const a = p[k];
    if (
      !Array.isArray(a) ||
      a.length === 0 ||
      !a.every((x) => typeof x === 'string' && NAME.test(x))
    )
      fail(`"${k}" must be a non-empty list of lower-case names`);
    return a as string[];
  };
  const targets = names('targets');
  const operations = names('operations');
  if (!Array.isArray(p.rules)) fail('"rules" must be a list');
  const ids = new Set<string>();
  for (const [i, r0] of (p.rules as unknown[]).entries()) {
    const r = r0 as Record<string, unknown>;
    const at = `rule ${typeof r?.id === 'string' ? r.id : `#${i + 1}`}`;
    const bad = (why: string) => fail(`${at}: ${why}`);
    if (typeof r?.id !== 'string' || !/^[A-Za-z][A-Za-z0-9_-]{0,31}$/.test(r.id))
      bad('"id" must be a short identifier');
    if (ids.has(r.id as string)) bad('its id is used twice');
    ids.add(r.id as string);
    if (!['permission', 'prohibition', 'obligation'].includes(r.type as string))
      bad('"type" must be permission, prohibition or obligation');
    if (
      typeof r.organization !== 'string' ||
      !(r.organization === '*' || NAME.test(r.organization))
    )
      bad('"organization" must be a member id or "*"');
    if (typeof r.role !== 'string' || !(r.role === '*' || NAME.test(r.role)))
      bad('"role" must be a role name or "*"');
    if (r.activity !== '*' && !operations.includes(r.activity as string))
      bad(`activity "${String(r.activity)}" is not one of the policy's operations`);
    if (r.view !== '*' && !targets.includes(r.view as string))
      bad(`view "${String(r.view)}" is not one of the policy's targets`);
    if (!isContext(r.context)) bad(`context "${String(r.context)}" is not a known context`);
    if (r.except !== undefined) {
      if (r.type !== 'prohibition') bad('only prohibitions have exceptions');
      if (!Array.isArray(r.except) || !r.except.every(isContext))
        bad('"except" must list known contexts');
    }
    if (r.obligations !== undefined) {
      if (r.type === 'prohibition') bad('prohibitions carry no obligations');
      const obs = r.obligations as unknown;
      if (
        !Array.isArray(obs) ||
        !obs.every(
          (o) =>
            o &&
            typeof o === 'object' &&
            NAME.test((o as Obligation).id) &&
            ['pre', 'post'].includes((o as Obligation).timing),
        )
      )
        bad('"obligations" must be a list of { id, timing: pre|post }');
    }
    if (r.type === 'obligation' && !(Array.isArray(r.obligations) && r.obligations.length === 1))
      bad('an obligation rule imposes exactly one obligation');
    if (typeof r.description !== 'string' || r.description.trim().length < 10)
      bad('"description" must say the rule in words');
  }
  return p as unknown as PolicyFile;
}

/** The rules in force in `domain`: its ancestors' rules, refined (same id replaced) by each level. */
export function effectiveRules(
  files: readonly PolicyFile[],
  domain: string,
): { rules: Rule[]; chain: PolicyFile[] } {
  const byDomain = new Map(files.map((f) => [f.domain, f]));
  const chain: PolicyFile[] = [];
  for (let d: string | undefined = domain; d; d = byDomain.get(d)?.parent) {
    const f = byDomain.get(d);
    if (!f) throw new ZtvError('bad-input', `no policy file for domain ${d}`);
    if (chain.includes(f)) throw new ZtvError('bad-input', `policy domains form a cycle at ${d}`);
    chain.unshift(f);
  }
  const rules = new Map<string, Rule>();
  for (const f of chain) for (const r of f.rules) rules.set(r.id, r);
  return { rules: [...rules.values()], chain };
}
