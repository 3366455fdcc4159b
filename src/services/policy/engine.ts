/**
 * The policy decision point: OrBAC policy files compiled to Cedar and evaluated with preparsed policy
 * sets and schema, with strict request validation. It fails closed — a request Cedar cannot validate,
 * or any evaluation error, is a deny — and explains every decision with the rules that made it and the
 * obligations that come with it. Roles come from the device certificate (structural), verified role
 * assignments (functional, scoped to the patient or study) and verified delegation chains.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { ZtvError } from '../../core/errors.ts';
import { cedarSchema, compileDomain, type CompiledDomain } from '../../core/policy/compile.ts';
import {
  checkPolicyFile,
  effectiveRules,
  type Obligation,
  type PolicyFile,
  type Rule,
} from '../../core/policy/model.ts';
import {
  verifyDelegationChain,
  verifyRoleAssignment,
  type KeyResolver,
  type RoleAssignment,
} from '../../core/policy/statements.ts';

export interface AccessRequest {
  /** The requester, as the device certificate and the session established it. */
  readonly principal: {
    readonly id: string;
    readonly organization: string;
    readonly roles: readonly string[];
  };
  readonly activity: string;
  readonly resource: {
    /** The OrBAC view: study, image, break-glass, audit-trail… */
    readonly kind: string;
    /** Pseudonymous patient reference and study id, for functional roles. */
    readonly patient?: string;
    readonly study?: string;
    /** For break-glass reviews: who made the access under review. */
    readonly requester?: string;
  };
  readonly context: {
    readonly purpose?: string;
    readonly time?: Date;
    /** Break-glass: the typed justification. */
    readonly emergencyJustification?: string;
    /** WatermarkUpdate: whether the cloud has inserted the requester's trace. */
    readonly traceInserted?: boolean;
  };
  /**
   * Signed statements presented with the request: the requester's role assignments, and the role
   * assignments of delegators whose functional role reaches the requester by a delegation chain.
   */
  readonly roleAssignments?: readonly string[];
  readonly delegations?: readonly (readonly string[])[];
}

export interface DecisionRecord {
  readonly decision: 'allow' | 'deny';
  /** Rule ids that determined the decision, sorted. */
  readonly rules: readonly string[];
  /** Obligations that come with an allow (pre: before access; post: after). */
  readonly obligations: readonly (Obligation & { readonly rule: string })[];
  /** Why a deny is a deny when no rule made it: errors, invalid statements, missing attributes. */
  readonly errors: readonly string[];
  /** Statements that were presented but refused, with the reason (they contributed nothing). */
  readonly refusedStatements: readonly string[];
  readonly delegationPath?: readonly string[];
  readonly domain: string;
  /** The request as logged: ids and attributes, pseudonymous. */
  readonly request: {
    readonly principal: string;
    readonly organization: string;
    readonly roles: readonly string[];
    readonly activity: string;
    readonly resource: string;
    readonly context: Readonly<Record<string, string | number | boolean>>;
  };
}

export interface EngineOptions {
  /** Resolves the signing key of a hospital acting as attribute authority. */
  readonly resolveIssuer: KeyResolver;
  /** Resolves the signing key of a clinician (delegations). */
  readonly resolveClinician: KeyResolver;
  /**
   * Whether a clinician natively holds a structural role, for resolvers that do not say (the
   * clinician resolver of the services gives the role of the device certificate itself). Functional
   * roles are never taken from here: a delegator proves one with a role assignment (see `decide`).
   */
  readonly holdsRole: (clinician: string, role: string) => Promise<boolean>;
  readonly maxDelegationDepth?: number;
  /** Shortest acceptable break-glass justification. */
  readonly minJustification?: number;
}

/** Functional roles a role assignment may give, and what they are scoped to. */
const FUNCTIONAL: Record<string, 'patient' | 'study'> = {
  attending: 'patient',
  'care-team': 'patient',
  'reading-radiologist': 'study',
};

let engines = 0;

export class PolicyEngine {
  private readonly id = ++engines;
  private readonly domains = new Map<
    string,
    { compiled: CompiledDomain; rules: Map<string, Rule>; file: PolicyFile }
  >();
  private readonly schemaName: string;

  private constructor(
    readonly files: readonly PolicyFile[],
    private readonly opts: EngineOptions,
  ) {
    this.schemaName = `ztv-schema-${this.id}`;
  }

  /** Checks, compiles and validates every policy file; refuses the set if Cedar finds any error. */
  static async load(raw: readonly unknown[], opts: EngineOptions): Promise<PolicyEngine> {
    const files = raw.map((f, i) => checkPolicyFile(f, `policy file ${i + 1}`));
    const engine = new PolicyEngine(files, opts);
    const schema = cedarSchema(files);
    const s = cedar.preparseSchema(engine.schemaName, schema);
    if (s.type !== 'success')
      throw new ZtvError(
        'bad-input',
        `the policy schema does not parse: ${s.errors.map((e) => e.message).join('; ')}`,
      );
    for (const f of files) {
      const { rules } = effectiveRules(files, f.domain);
      const compiled = compileDomain(f.domain, rules);
      for (const [set, policies] of [
        ['access', compiled.access],
        ['obligations', compiled.obligations],
      ] as const) {
        if (Object.keys(policies).length === 0) continue;
        const v = cedar.validate({
          schema,
          policies: { staticPolicies: policies },
          validationSettings: { mode: 'strict' },
        });
        if (v.type !== 'success')
          throw new ZtvError('bad-input', `${f.id}: ${v.errors.map((e) => e.message).join('; ')}`);
        if (v.validationErrors.length)
          throw new ZtvError(
            'bad-input',
            `${f.id}: rule ${v.validationErrors[0]!.policyId} does not type-check: ${v.validationErrors[0]!.error.message}`,
          );
        const p = cedar.preparsePolicySet(engine.setId(f.domain, set), {
          staticPolicies: policies,
        });
        if (p.type !== 'success')
          throw new ZtvError('bad-input', `${f.id}: ${p.errors.map((e) => e.message).join('; ')}`);
      }
      engine.domains.set(f.domain, {
        compiled,
        rules: new Map(rules.map((r) => [r.id, r])),
        file: f,
      });
    }
    return engine;
  }

  private setId(domain: string, set: 'access' | 'obligations'): string {
    return `ztv-${this.id}-${domain}-${set}`;
  }

  compiled(domain: string): CompiledDomain {
    const d = this.domains.get(domain);
    if (!d) throw new ZtvError('bad-input', `no policy for domain ${domain}`);
    return d.compiled;
  }

  /** Decides `req` under the policy of `domain`. Never throws for a bad request: it denies. */
  async decide(domain: string, req: AccessRequest): Promise<DecisionRecord> {
    const d = this.domains.get(domain);
    const now = (req.context.time ?? new Date()).getTime();
    const refused: string[] = [];
    const errors: string[] = [];
    const roles = new Set(req.principal.roles);
    let treatment = false;
    let delegationPath: readonly string[] | undefined;

    const inScope = (a: RoleAssignment, scope: 'patient' | 'study'): boolean =>
      scope === 'patient'
        ? !!req.resource.patient && a.patient === req.resource.patient
        : !!req.resource.study && a.study === req.resource.study;
    // Functional roles from role assignments: valid, about this requester, within scope. Valid
    // assignments about someone else are kept aside: they may prove what a delegator holds.
    const others: { a: RoleAssignment; used: boolean }[] = [];
    for (const jws of req.roleAssignments ?? []) {
      try {
        const a = await verifyRoleAssignment(jws, this.opts.resolveIssuer, now);
        const scope = FUNCTIONAL[a.role];
        if (!scope) throw new Error(`${a.role} is not a functional role`);
        if (a.sub !== req.principal.id) {
          others.push({ a, used: false });
          continue;
        }
        if (!inScope(a, scope)) throw new Error(`the ${a.role} assignment is for another ${scope}`);
        roles.add(a.role);
        treatment = true;
      } catch (e) {
        refused.push((e as Error).message);
      }
    }
    // Delegated privileges: one verified chain per presented list. The first delegator must hold
    // the role: a structural role by their device certificate (as the clinician resolver reports it,
    // or `holdsRole`), a functional role by a valid role assignment of theirs presented with the
    // request and in scope for this very resource — what an attending physician can pass on is
    // being attending of *this* patient, for the delegation's time, and nothing wider.
    const certRoles = new Map<string, readonly string[]>();
    const resolveClinician: KeyResolver = async (kid, header) => {
      const signer = await this.opts.resolveClinician(kid, header);
      if (!signer) return undefined;
      if (signer.roles) certRoles.set(signer.id, signer.roles);
      return { id: signer.id, key: signer.key }; // roles judged below, functional ones included
    };
    const holds = async (clinician: string, role: string): Promise<boolean> => {
      const scope = FUNCTIONAL[role];
      if (scope) {
        const proof = others.find(
          (o) => o.a.sub === clinician && o.a.role === role && inScope(o.a, scope),
        );
        if (proof) proof.used = true;
        return !!proof;
      }
      const known = certRoles.get(clinician);
      return known ? known.includes(role) : this.opts.holdsRole(clinician, role);
    };
    let delegated = false;
    for (const chain of req.delegations ?? []) {
      try {
        const g = await verifyDelegationChain(
          chain,
          req.principal.id,
          resolveClinician,
          holds,
          this.opts.maxDelegationDepth ?? 2,
          now,
        );
        if (g.activity !== req.activity)
          throw new Error(`the delegation is for ${g.activity}, not ${req.activity}`);
        roles.add(g.role);
        // A delegated functional role carries its scope: the treatment relationship it stands for.
        if (FUNCTIONAL[g.role]) treatment = true;
        delegated = true;
        delegationPath = g.path;
      } catch (e) {
        refused.push((e as Error).message);
      }
    }
    for (const o of others)
      if (!o.used) refused.push(`the role assignment is for ${o.a.sub}, not the requester`);

    const file = d?.file;
    const hour = file ? localHour(now, file.timeZone ?? 'UTC') : 0;
    const justification = req.context.emergencyJustification?.trim() ?? '';
    const emergency = justification.length >= (this.opts.minJustification ?? 20);
    if (req.context.emergencyJustification !== undefined && !emergency)
      refused.push(
        `break-glass needs a typed justification of at least ${this.opts.minJustification ?? 20} characters`,
      );
    const context = {
      treatment,
      purpose: req.context.purpose ?? '',
      hour,
      workingStart: file?.workingHours?.start ?? 0,
      workingEnd: file?.workingHours?.end ?? 24,
      emergency,
      traceInserted: req.context.traceInserted ?? false,
      delegated,
    };
    const summary = {
      principal: req.principal.id,
      organization: req.principal.organization,
      roles: [...roles].sort(),
      activity: req.activity,
      resource: [
        req.resource.kind,
        req.resource.study ?? req.resource.patient ?? req.resource.requester ?? '',
      ]
        .filter(Boolean)
        .join(':'),
      context,
    };
    const base = {
      domain,
      request: summary,
      refusedStatements: refused,
      ...(delegationPath ? { delegationPath } : {}),
    };
    const deny = (why: string[], rules: string[] = []): DecisionRecord => ({
      ...base,
      decision: 'deny',
      rules,
      obligations: [],
      errors: why,
    });
    if (!d) return deny([`no policy governs domain ${domain}`]);
    if (!req.context.purpose) errors.push('the request declares no purpose of use');

    const call = (set: 'access' | 'obligations') =>
      cedar.statefulIsAuthorized({
        principal: { type: 'User', id: req.principal.id },
        action: { type: 'Action', id: req.activity },
        resource: { type: 'Resource', id: 'target' },
        context,
        entities: [
          {
            uid: { type: 'User', id: req.principal.id },
            attrs: { id: req.principal.id, organization: req.principal.organization },
            parents: [...roles].map((r) => ({ type: 'Role', id: r })),
          },
          ...[...roles].map((r) => ({ uid: { type: 'Role', id: r }, attrs: {}, parents: [] })),
          {
            uid: { type: 'Resource', id: 'target' },
            attrs: { kind: req.resource.kind, requester: req.resource.requester ?? '' },
            parents: [],
          },
        ],
        preparsedPolicySetId: this.setId(domain, set),
        preparsedSchemaName: this.schemaName,
        validateRequest: true,
      });
    const answer = call('access');
    if (answer.type !== 'success') return deny([...errors, ...answer.errors.map((e) => e.message)]);
    const reasons = [...answer.response.diagnostics.reason].sort();
    const evalErrors = answer.response.diagnostics.errors.map(
      (e) => `rule ${e.policyId}: ${e.error.message}`,
    );
    if (evalErrors.length || errors.length) return deny([...errors, ...evalErrors], reasons);
    if (answer.response.decision === 'deny') return deny([], reasons);

    // Allowed: collect obligations from the permitting rules and from obligation rules that apply.
    const obligations: (Obligation & { rule: string })[] = [];
    for (const id of reasons)
      for (const o of d.rules.get(id)?.obligations ?? []) obligations.push({ ...o, rule: id });
    if (Object.keys(d.compiled.obligations).length) {
      const ob = call('obligations');
      if (ob.type !== 'success' || ob.response.diagnostics.errors.length)
        return deny(['the obligations of this access could not be determined'], reasons);
      for (const id of [...ob.response.diagnostics.reason].sort())
        for (const o of d.rules.get(id)?.obligations ?? []) obligations.push({ ...o, rule: id });
    }
    return { ...base, decision: 'allow', rules: reasons, obligations, errors: [] };
  }
}

/** The hour of the day (0–23) at `ms` in `timeZone`. */
export function localHour(ms: number, timeZone: string): number {
  const h = new Intl.DateTimeFormat('en-GB', {
    timeZone,
    hour: 'numeric',
    hourCycle: 'h23',
  }).format(new Date(ms));
  return Number(h);
}

export interface Enforced {
  readonly decision: DecisionRecord;
  /** Obligations carried out (pre) and still owed (post). */
  readonly fulfilled: readonly string[];
  readonly pending: readonly string[];
}

/**
 * Carries out the pre-obligations of an allowed decision with the given handlers; an obligation with
 * no handler, or whose handler fails, turns the decision into a deny. Post-obligations are returned
 * as pending for the caller to schedule (e.g. break-glass review).
 */
export async function enforce(
  decision: DecisionRecord,
  handlers: Readonly<Record<string, () => Promise<void>>>,
): Promise<Enforced> {
  if (decision.decision !== 'allow') return { decision, fulfilled: [], pending: [] };
  const fulfilled: string[] = [];
  for (const o of decision.obligations.filter((x) => x.timing === 'pre')) {
    const h = handlers[o.id];
    try {
      if (!h) throw new Error('no one can carry it out here');
      await h();
      fulfilled.push(o.id);
    } catch (e) {
      return {
        decision: {
          ...decision,
          decision: 'deny',
          errors: [`obligation ${o.id} (rule ${o.rule}) could not be met: ${(e as Error).message}`],
        },
        fulfilled,
        pending: [],
      };
    }
  }
  return {
    decision,
    fulfilled,
    pending: decision.obligations.filter((x) => x.timing === 'post').map((x) => x.id),
  };
}
