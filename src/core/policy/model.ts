/**
 * The OrBAC policy model, as security officers write it: versioned policy files, one per policy domain
 * (ISO/TS 22600-2: policy id, name, authority, domain, targets, operations), whose rules are
 * permissions, prohibitions and obligations of the form (organisation, role, activity, view, context),
 * each stating the purposes of use it serves. Roles and purposes come from vocabularies the files
 * declare: structural roles, functional roles with the structural roles that may hold them, who may
 * assign them and whether they may be delegated; HL7 v3 PurposeOfUse codes. A domain nested in another
 * inherits its parent's vocabularies and rules: it may add to them and replace a permission, never lift
 * an inherited prohibition or obligation, nor redefine an inherited role or purpose. Files are checked
 * here, before anything is compiled.
 */
import { ZtvError } from '../errors.ts';
import { isHl7PurposeOfUse, PURPOSE_CODE, type PurposeDefinition } from './purposes.ts';

export const POLICY_FORMAT = 'ztv-policy/2';

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
export type ContextName = (typeof CONTEXTS)[number];

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
  /** Trust-group member id of the requester's organisation, or "*" (any member of the trust group). */
  readonly organization: string;
  /** A role of the vocabulary, or "*". */
  readonly role: string;
  /** An operation of the policy, or "*" for all. */
  readonly activity: string;
  /** A target of the policy, or "*" for all. */
  readonly view: string;
  readonly context: ContextName;
  /**
   * Purposes of use (codes of the vocabulary) the rule serves. Every permission states them; a
   * prohibition or obligation without them applies whatever the purpose.
   */
  readonly purposes?: readonly string[];
  /**
   * Prohibitions only: "person" judges the role (and the clinical-role context) over every role the
   * requester holds in their hospital's directory, not only the roles of this request — static
   * separation of duty is about the person, not the device in hand.
   */
  readonly holder?: 'person';
  /** Prohibitions only: contexts in which the prohibition does not apply (e.g. emergency). */
  readonly except?: readonly ContextName[];
  /** Permissions: obligations that come with the access. Obligation rules: the one they impose. */
  readonly obligations?: readonly Obligation[];
  /** The rule in plain words, for the security officer. */
  readonly description: string;
}

/** A role of the vocabulary. */
export interface RoleDefinition {
  /** Structural roles come from the device certificate; functional ones from role assignments. */
  readonly kind: 'structural' | 'functional';
  /** Structural: a clinical role (for separation of duty). */
  readonly clinical?: boolean;
  /** Functional: what an assignment of the role is about. */
  readonly scope?: 'patient' | 'study';
  /** Functional: the structural roles that may hold it (by assignment or by delegation). */
  readonly heldBy?: readonly string[];
  /**
   * Functional: trust-group members that act as attribute authority for this role. Without it, only
   * the holder's own organisation may assign it. Never the cloud.
   */
  readonly authorities?: readonly string[];
  /** Whether the role may be delegated, and along how many hops; absent: never delegated. */
  readonly delegation?: { readonly maxDepth: number };
  readonly description?: string;
}

/** Who is accountable for a policy file: the organisation whose certificate signs it, and the officer. */
export interface PolicyAuthority {
  /** Trust-group member id of the signing organisation. */
  readonly organization: string;
  readonly officer: string;
}

export interface PolicyFile {
  readonly format: typeof POLICY_FORMAT;
  readonly id: string;
  readonly name: string;
  readonly version: number;
  readonly authority: PolicyAuthority;
  /** Policy domain OID; `parent` is the enclosing domain's. */
  readonly domain: string;
  readonly parent?: string;
  /** IANA time zone of the domain's hospital, for working hours. */
  readonly timeZone?: string;
  readonly workingHours?: { readonly start: number; readonly end: number };
  /** Views (targets) and activities (operations) the rules may name. */
  readonly targets: readonly string[];
  readonly operations: readonly string[];
  /** Roles and purposes this file declares (added to those of the enclosing domains). */
  readonly roles?: Readonly<Record<string, RoleDefinition>>;
  readonly purposes?: Readonly<Record<string, PurposeDefinition>>;
  readonly rules: readonly Rule[];
}

const NAME = /^[a-z][a-z0-9-]{0,40}$/;
const OID = /^[0-2](\.(0|[1-9][0-9]*))+$/;

const isContext = (c: unknown): c is ContextName =>
  typeof c === 'string' && (CONTEXTS as readonly string[]).includes(c);

const isObject = (v: unknown): v is Record<string, unknown> =>
  !!v && typeof v === 'object' && !Array.isArray(v);

const isNameList = (v: unknown): v is string[] =>
  Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string' && NAME.test(x));

function checkRoles(v: unknown, fail: (why: string) => never): void {
  if (!isObject(v)) fail('"roles" must map role names to their definitions');
  for (const [name, d] of Object.entries(v)) {
    const bad = (why: string) => fail(`role ${name}: ${why}`);
    if (!NAME.test(name)) bad('a role name is lower-case letters, digits and hyphens');
    if (!isObject(d)) bad('its definition must be an object');
    const def = d as Record<string, unknown>;
    if (def.kind !== 'structural' && def.kind !== 'functional')
      bad('"kind" must be structural or functional');
    if (def.kind === 'structural') {
      for (const k of ['scope', 'heldBy', 'authorities'])
        if (def[k] !== undefined) bad(`a structural role has no "${k}"`);
      if (def.clinical !== undefined && typeof def.clinical !== 'boolean')
        bad('"clinical" must be true or false');
    } else {
      if (def.scope !== 'patient' && def.scope !== 'study')
        bad('a functional role is about a patient or a study ("scope")');
      if (!isNameList(def.heldBy))
        bad('a functional role names the structural roles that may hold it ("heldBy")');
      if (def.authorities !== undefined && !isNameList(def.authorities))
        bad('"authorities" must list trust-group member ids');
      if (def.clinical !== undefined) bad('only structural roles are clinical or not');
    }
    if (def.delegation !== undefined) {
      const depth = isObject(def.delegation) ? def.delegation.maxDepth : undefined;
      if (!Number.isInteger(depth) || (depth as number) < 1 || (depth as number) > 4)
        bad('"delegation" must be { maxDepth } with 1 ≤ maxDepth ≤ 4');
    }
  }
}

function checkPurposes(v: unknown, fail: (why: string) => never): void {
  if (!isObject(v)) fail('"purposes" must map PurposeOfUse codes to their definitions');
  for (const [code, d] of Object.entries(v)) {
    const bad = (why: string) => fail(`purpose ${code}: ${why}`);
    if (!PURPOSE_CODE.test(code) || !isHl7PurposeOfUse(code))
      bad('is not an HL7 v3 PurposeOfUse code (TREAT, ETREAT, HRESCH, HOPERAT, …)');
    if (!isObject(d)) bad('its definition must be an object');
    const def = d as Record<string, unknown>;
    if (typeof def.display !== 'string' || !def.display.trim()) bad('"display" is required');
    if (typeof def.identity !== 'boolean')
      bad('"identity" must say whether the purpose may disclose who the patient is');
    if (def.emergency !== undefined && typeof def.emergency !== 'boolean')
      bad('"emergency" must be true or false');
  }
}

/** Checks a parsed policy file; every problem is named with the rule it is in. */
export function checkPolicyFile(v: unknown, what = 'the policy file'): PolicyFile {
  const fail = (why: string): never => {
    throw new ZtvError('bad-input', `${what}: ${why}`);
  };
  if (!isObject(v)) return fail('is not a JSON object');
  const p = v;
  if (p.format !== POLICY_FORMAT) fail(`format must be "${POLICY_FORMAT}"`);
  for (const k of ['id', 'name'] as const)
    if (typeof p[k] !== 'string' || !(p[k] as string).trim()) fail(`"${k}" is required`);
  const a = p.authority;
  if (
    !isObject(a) ||
    typeof a.organization !== 'string' ||
    !NAME.test(a.organization) ||
    typeof a.officer !== 'string' ||
    !a.officer.trim()
  )
    fail(
      '"authority" must be { organization, officer }: the trust-group member whose certificate signs the file, and its security officer',
    );
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
    if (!isNameList(p[k])) fail(`"${k}" must be a non-empty list of lower-case names`);
    return p[k] as string[];
  };
  const targets = names('targets');
  const operations = names('operations');
  if (p.roles !== undefined) checkRoles(p.roles, fail);
  if (p.purposes !== undefined) checkPurposes(p.purposes, fail);
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
    if (r.purposes !== undefined) {
      const ps = r.purposes;
      if (
        !Array.isArray(ps) ||
        ps.length === 0 ||
        !ps.every((x) => typeof x === 'string' && PURPOSE_CODE.test(x))
      )
        bad('"purposes" must list PurposeOfUse codes');
    } else if (r.type === 'permission')
      bad('a permission states the purposes of use it serves ("purposes")');
    if (r.holder !== undefined) {
      if (r.type !== 'prohibition') bad('only prohibitions are judged over the person');
      if (r.holder !== 'person') bad('"holder" may only be "person"');
    }
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

/** What is in force in a domain: its ancestors' vocabularies and rules, with its own added. */
export interface EffectivePolicy {
  readonly rules: Rule[];
  /** The files from the outermost domain to this one. */
  readonly chain: PolicyFile[];
  readonly roles: ReadonlyMap<string, RoleDefinition>;
  readonly purposes: ReadonlyMap<string, PurposeDefinition>;
}

/**
 * The policy in force in `domain`: the vocabularies and rules of its ancestors, each level adding its
 * own. A level may replace an inherited permission (same id, same type), never an inherited
 * prohibition or obligation — the enclosing domain constrains the ones inside it — nor redefine an
 * inherited role or purpose. Every rule must name roles and purposes of the vocabulary in force.
 */
export function effectivePolicy(files: readonly PolicyFile[], domain: string): EffectivePolicy {
  const byDomain = new Map<string, PolicyFile>();
  for (const f of files) {
    if (byDomain.has(f.domain))
      throw new ZtvError('bad-input', `two policy files govern domain ${f.domain}`);
    byDomain.set(f.domain, f);
  }
  const chain: PolicyFile[] = [];
  for (let d: string | undefined = domain; d; d = byDomain.get(d)?.parent) {
    const f = byDomain.get(d);
    if (!f) throw new ZtvError('bad-input', `no policy file for domain ${d}`);
    if (chain.includes(f)) throw new ZtvError('bad-input', `policy domains form a cycle at ${d}`);
    chain.unshift(f);
  }
  const roles = new Map<string, RoleDefinition>();
  const purposes = new Map<string, PurposeDefinition>();
  const rules = new Map<string, { rule: Rule; file: PolicyFile }>();
  const declaredBy = new Map<string, PolicyFile>();
  for (const f of chain) {
    const fail = (why: string): never => {
      throw new ZtvError('bad-input', `${f.id}: ${why}`);
    };
    for (const [kind, own, all] of [
      ['role', f.roles ?? {}, roles],
      ['purpose', f.purposes ?? {}, purposes],
    ] as const)
      for (const [name, def] of Object.entries(own)) {
        const prev = declaredBy.get(`${kind}:${name}`);
        if (prev)
          fail(
            `${kind} ${name} is already declared by ${prev.id}; a sub-domain cannot redefine it`,
          );
        declaredBy.set(`${kind}:${name}`, f);
        (all as Map<string, unknown>).set(name, def);
      }
    for (const r of f.rules) {
      const prev = rules.get(r.id);
      if (prev && prev.rule.type !== 'permission')
        fail(
          `rule ${r.id} would replace the ${prev.rule.type} ${r.id} of ${prev.file.id}: an inherited ${prev.rule.type} cannot be lifted or changed by a sub-domain`,
        );
      if (prev && r.type !== prev.rule.type)
        fail(`rule ${r.id} replaces the permission of ${prev.file.id} with a ${r.type}`);
      rules.set(r.id, { rule: r, file: f });
    }
  }
  for (const [name, def] of roles)
    if (def.kind === 'functional')
      for (const s of def.heldBy ?? [])
        if (roles.get(s)?.kind !== 'structural')
          throw new ZtvError(
            'bad-input',
            `${declaredBy.get(`role:${name}`)!.id}: role ${name} may be held by ${s}, which is not a structural role of the vocabulary`,
          );
  for (const { rule: r, file: f } of rules.values()) {
    const fail = (why: string): never => {
      throw new ZtvError('bad-input', `${f.id}: rule ${r.id}: ${why}`);
    };
    if (r.role !== '*' && !roles.has(r.role))
      fail(`role "${r.role}" is not in the vocabulary of domain ${domain}`);
    if (r.holder === 'person' && r.role !== '*' && roles.get(r.role)?.kind !== 'structural')
      fail('a rule judged over the person names a structural role');
    for (const p of r.purposes ?? [])
      if (!purposes.has(p)) fail(`purpose "${p}" is not in the vocabulary of domain ${domain}`);
  }
  return { rules: [...rules.values()].map((x) => x.rule), chain, roles, purposes };
}
