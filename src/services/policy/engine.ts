/**
 * The policy decision point: OrBAC policy files compiled to Cedar and evaluated with preparsed policy
 * sets and schema, with strict request validation. It fails closed — a request without a requester,
 * from an organisation outside the trust group, with a purpose outside the domain's vocabulary, that
 * Cedar cannot validate, or any evaluation error, is a deny — and explains every decision with the
 * rules that made it and the obligations that come with it. Roles come from the device certificate
 * (structural), verified role assignments of an attribute authority the policy accepts (functional,
 * scoped to the patient or study, held only by the structural roles the policy names) and verified
 * delegation chains within one organisation; separation of duty sees every role the person holds in
 * their hospital's directory.
 */
import * as cedar from '@cedar-policy/cedar-wasm/nodejs';
import { ZtvError } from '../../core/errors.ts';
import { cedarSchema, compileDomain, type CompiledDomain } from '../../core/policy/compile.ts';
import {
  checkPolicyFile,
  effectivePolicy,
  type EffectivePolicy,
  type Obligation,
  type PolicyFile,
  type RoleDefinition,
  type Rule,
} from '../../core/policy/model.ts';
import type { PurposeDefinition } from '../../core/policy/purposes.ts';
import {
  qualified,
  StatementError,
  verifyDelegationChain,
  verifyRoleAssignment,
  type KeyResolver,
  type VerifiedAssignment,
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
    /** An HL7 v3 PurposeOfUse code of the domain's vocabulary. */
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
  /** Obligations that come with an allow (pre: before access; post: after), each once. */
  readonly obligations: readonly (Obligation & { readonly rule: string })[];
  /** Why a deny is a deny when no rule made it: errors, invalid statements, missing attributes. */
  readonly errors: readonly string[];
  /** Statements that were presented but refused, with the reason (they contributed nothing). */
  readonly refusedStatements: readonly string[];
  readonly delegationPath?: readonly string[];
  readonly domain: string;
  /** The request as logged: ids and attributes, pseudonymous; a break-glass justification whole. */
  readonly request: {
    readonly principal: string;
    readonly organization: string;
    readonly roles: readonly string[];
    /** Every role the person holds, as their hospital's directory says (when it was consulted). */
    readonly held?: readonly string[];
    readonly activity: string;
    readonly resource: string;
    readonly context: Readonly<Record<string, string | number | boolean>>;
  };
}

/**
 * The activities of a consultation, which need the requester's live sign-in at their hospital (when
 * its directory says): searching, consulting, redeeming a ticket. Auditors' activities do not.
 */
export const LIVE_SIGN_IN_ACTIVITIES: ReadonlySet<string> = new Set([
  'search',
  'consult',
  'redeem',
]);

/** What a break-glass justification must at least be: words, not a length. */
export interface JustificationRule {
  readonly minCharacters: number;
  /** Distinct words of two letters or more. */
  readonly minWords: number;
  /** Distinct letters. */
  readonly minLetters: number;
}

export const DEFAULT_JUSTIFICATION: JustificationRule = {
  minCharacters: 20,
  minWords: 4,
  minLetters: 8,
};

/** Whether a break-glass justification is made of words; the reason if not. */
export function justificationProblem(
  text: string,
  rule: JustificationRule = DEFAULT_JUSTIFICATION,
): string | undefined {
  const t = text.trim();
  const words = new Set(t.toLowerCase().match(/\p{L}{2,}/gu) ?? []);
  const letters = new Set(t.toLowerCase().match(/\p{L}/gu) ?? []);
  if (
    t.length >= rule.minCharacters &&
    words.size >= rule.minWords &&
    letters.size >= rule.minLetters
  )
    return undefined;
  return `break-glass needs a typed justification in words: at least ${rule.minCharacters} characters, ${rule.minWords} different words and ${rule.minLetters} different letters (given: ${t.length} characters, ${words.size} words, ${letters.size} letters)`;
}

export interface EngineOptions {
  /** Resolves the signing key of an organisation acting as attribute authority (or directory). */
  readonly resolveIssuer: KeyResolver;
  /** Resolves the signing key of a clinician (delegations), with their organisation. */
  readonly resolveClinician: KeyResolver;
  /**
   * The trust-group member an organisation id names, now, or undefined: every request's organisation
   * is checked here, whatever the rules say ("*" included).
   */
  readonly resolveOrganization: (id: string) => Promise<{ readonly role: string } | undefined>;
  /**
   * The requester's entry in their hospital's directory: active or not, and every structural role
   * the person holds. Throws (with the reason) when it cannot be had; the request is then denied.
   * Without it, separation of duty sees only the roles of the request.
   */
  readonly directory?: (who: { readonly id: string; readonly organization: string }) => Promise<{
    readonly active: boolean;
    readonly roles: readonly string[];
    /** Whether the person has a live sign-in there (absent: the directory does not say). */
    readonly signedIn?: boolean;
  }>;
  /** Whether a statement (role assignment or delegation hop) was revoked before its expiry. */
  readonly isRevoked?: (jti: string) => Promise<boolean>;
  /**
   * Whether a clinician natively holds a structural role, for resolvers that do not say (the
   * clinician resolver of the services gives the role of the device certificate itself). Functional
   * roles are never taken from here: a delegator proves one with a role assignment (see `decide`).
   */
  readonly holdsRole: (clinician: string, role: string) => Promise<boolean>;
  /** A cap on every delegation chain, whatever the roles allow. */
  readonly maxDelegationDepth?: number;
  readonly justification?: JustificationRule;
}

interface Domain {
  readonly compiled: CompiledDomain;
  readonly rules: Map<string, Rule>;
  readonly file: PolicyFile;
  readonly roles: ReadonlyMap<string, RoleDefinition>;
  readonly purposes: ReadonlyMap<string, PurposeDefinition>;
}

let engines = 0;

export class PolicyEngine {
  private readonly id = ++engines;
  private readonly domains = new Map<string, Domain>();
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
      const policy: EffectivePolicy = effectivePolicy(files, f.domain);
      const compiled = compileDomain(f.domain, policy.rules, policy);
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
        rules: new Map(policy.rules.map((r) => [r.id, r])),
        file: f,
        roles: policy.roles,
        purposes: policy.purposes,
      });
    }
    return engine;
  }

  private setId(domain: string, set: 'access' | 'obligations'): string {
    return `ztv-${this.id}-${domain}-${set}`;
  }

  compiled(domain: string): CompiledDomain {
    return this.domain(domain).compiled;
  }

  /** The purposes of use of a domain's vocabulary (HL7 v3 PurposeOfUse codes), with their definitions. */
  purposes(domain: string): ReadonlyMap<string, PurposeDefinition> {
    return this.domain(domain).purposes;
  }

  /** The roles of a domain's vocabulary. */
  roles(domain: string): ReadonlyMap<string, RoleDefinition> {
    return this.domain(domain).roles;
  }

  private domain(domain: string): Domain {
    const d = this.domains.get(domain);
    if (!d) throw new ZtvError('bad-input', `no policy for domain ${domain}`);
    return d;
  }

  /** Decides `req` under the policy of `domain`. Never throws for a bad request: it denies. */
  async decide(domain: string, req: AccessRequest): Promise<DecisionRecord> {
    const d = this.domains.get(domain);
    const now = (req.context.time ?? new Date()).getTime();
    const refused: string[] = [];
    const errors: string[] = [];
    const me = { id: req.principal.id, organization: req.principal.organization };
    const structural = [...req.principal.roles];
    const roles = new Set(structural);
    let held: Set<string> | undefined;
    let treatment = false;
    let delegated = false;
    let delegationPath: readonly string[] | undefined;
    const vocab = d?.roles ?? new Map<string, RoleDefinition>();
    const revoked = async (jti: string) => (await this.opts.isRevoked?.(jti)) ?? false;

    // The requester: someone, of an organisation the trust group admits now, acting in roles the
    // vocabulary knows — checked here whatever the rules say, so that "*" never means "anyone".
    if (!me.id || !me.organization) errors.push('the request names no requester');
    else if (!(await this.opts.resolveOrganization(me.organization).catch(() => undefined)))
      errors.push(`organisation ${me.organization} is not a member of the current trust group`);
    if (structural.length === 0) errors.push('the request names no role of the requester');
    for (const r of structural)
      if (vocab.get(r)?.kind !== 'structural')
        errors.push(`${r || 'an empty role'} is not a structural role of the policy`);
    if (d && me.id && me.organization && this.opts.directory) {
      try {
        const entry = await this.opts.directory(me);
        if (!entry.active)
          errors.push(`${me.id} is not an active member of the directory of ${me.organization}`);
        // A consultation needs a live sign-in: signing out ends what the sign-in enabled.
        else if (entry.signedIn === false && LIVE_SIGN_IN_ACTIVITIES.has(req.activity))
          errors.push(
            `${me.id} has no live sign-in at ${me.organization} (signed out or expired): sign in again`,
          );
        for (const r of structural)
          if (!entry.roles.includes(r))
            errors.push(
              `the directory of ${me.organization} does not give ${me.id} the role ${r} this request acts in`,
            );
        held = new Set([...entry.roles, ...structural]);
      } catch (e) {
        errors.push(
          `the directory of ${me.organization} could not confirm ${me.id}: ${(e as Error).message}`,
        );
      }
    }

    const inScope = (a: { patient?: string; study?: string }, scope: 'patient' | 'study') =>
      scope === 'patient'
        ? !!req.resource.patient && a.patient === req.resource.patient
        : !!req.resource.study && a.study === req.resource.study;
    const mayHold = (def: RoleDefinition, structuralRoles: readonly string[]) =>
      (def.heldBy ?? []).some((s) => structuralRoles.includes(s));
    // Functional roles from role assignments: valid, of an attribute authority the policy accepts for
    // the role, about this requester, held by a structural role the policy allows, within scope.
    // Valid assignments about someone else are kept aside: they may prove what a delegator holds.
    const others: { a: VerifiedAssignment; def: RoleDefinition; used: boolean }[] = [];
    for (const jws of req.roleAssignments ?? []) {
      try {
        const a = await verifyRoleAssignment(jws, this.opts.resolveIssuer, now);
        const def = vocab.get(a.role);
        if (def?.kind !== 'functional')
          throw new StatementError(`${a.role} is not a functional role of the policy`);
        if (a.issuerRole === 'cloud' || a.issuerRole === 'authority')
          throw new StatementError(
            `the ${a.role} assignment is signed by the ${a.issuerRole} (${a.iss}), which is no attribute authority`,
          );
        const authorities = def.authorities ?? [a.subOrg];
        if (!authorities.includes(a.iss))
          throw new StatementError(
            `the ${a.role} assignment of ${qualified(a.sub, a.subOrg)} is signed by ${a.iss}, which is not an attribute authority for it (${authorities.join(', ')})`,
          );
        if (await revoked(a.jti)) throw new StatementError('the role assignment was revoked');
        if (a.sub !== me.id || a.subOrg !== me.organization) {
          others.push({ a, def, used: false });
          continue;
        }
        if (!mayHold(def, structural))
          throw new StatementError(
            `the role ${a.role} is held by ${def.heldBy!.join(' or ')}, and ${me.id} acts as ${structural.join(', ') || 'nobody'}`,
          );
        if (!inScope(a, def.scope!))
          throw new StatementError(`the ${a.role} assignment is for another ${def.scope}`);
        roles.add(a.role);
        treatment = true;
      } catch (e) {
        refused.push((e as Error).message);
      }
    }
    // Delegated privileges: one verified chain per presented list. The role must be delegable, the
    // chain no deeper than the role allows; the first delegator must hold it — a structural role by
    // their device certificate (as the clinician resolver reports it, or `holdsRole`), a functional
    // role by a valid role assignment of theirs presented with the request, in scope for this very
    // resource, and a structural role that may hold it. A functional role is delegated for what was
    // delegated (the patient or study the delegation names), and only to a structural role that may
    // hold it.
    const holds = async (
      who: { readonly id: string; readonly organization: string },
      role: string,
      signerRoles: readonly string[] | undefined,
    ): Promise<boolean> => {
      const def = vocab.get(role);
      if (!def?.delegation)
        throw new StatementError(`the role ${role || '""'} cannot be delegated`);
      if (def.kind === 'functional') {
        if (signerRoles && !mayHold(def, signerRoles)) return false;
        const proof = others.find(
          (o) =>
            o.a.sub === who.id &&
            o.a.subOrg === who.organization &&
            o.a.role === role &&
            inScope(o.a, def.scope!),
        );
        if (proof) proof.used = true;
        return !!proof;
      }
      return signerRoles ? signerRoles.includes(role) : this.opts.holdsRole(who.id, role);
    };
    for (const chain of req.delegations ?? []) {
      try {
        const g = await verifyDelegationChain(
          chain,
          me,
          this.opts.resolveClinician,
          holds,
          this.opts.maxDelegationDepth ?? 4,
          now,
        );
        const def = vocab.get(g.role)!;
        if (chain.length > def.delegation!.maxDepth)
          throw new StatementError(
            `the role ${g.role} may be delegated along at most ${def.delegation!.maxDepth} hop(s); this chain has ${chain.length}`,
          );
        for (const j of g.jtis)
          if (await revoked(j)) throw new StatementError('a hop of the delegation was revoked');
        if (g.activity !== req.activity)
          throw new StatementError(`the delegation is for ${g.activity}, not ${req.activity}`);
        if (def.kind === 'functional') {
          const named = def.scope === 'patient' ? g.patient : g.study;
          if (named === undefined)
            throw new StatementError(
              `the delegation of ${g.role} names no ${def.scope}: a functional role is delegated for one ${def.scope}`,
            );
          if (!inScope(g, def.scope!))
            throw new StatementError(
              `the delegation of ${g.role} is for another ${def.scope} than this request's`,
            );
          if (!mayHold(def, structural))
            throw new StatementError(
              `the role ${g.role} is held by ${def.heldBy!.join(' or ')}: it cannot be delegated to ${me.id}, who acts as ${structural.join(', ')}`,
            );
          // A delegated functional role carries its scope: the treatment relationship it stands for.
          treatment = true;
        } else {
          if (g.patient !== undefined && !inScope(g, 'patient'))
            throw new StatementError('the delegation is for another patient');
          if (g.study !== undefined && !inScope(g, 'study'))
            throw new StatementError('the delegation is for another study');
        }
        roles.add(g.role);
        delegated = true;
        delegationPath = g.path;
      } catch (e) {
        refused.push((e as Error).message);
      }
    }
    for (const o of others)
      if (!o.used)
        refused.push(
          `the role assignment is for ${qualified(o.a.sub, o.a.subOrg)}, not the requester`,
        );

    // Purpose of use: a code of the domain's closed vocabulary; break-glass only for an emergency one,
    // with a justification made of words.
    const purpose = req.context.purpose ?? '';
    const purposeDef = d?.purposes.get(purpose);
    if (!purpose) errors.push('the request declares no purpose of use');
    else if (d && !purposeDef)
      errors.push(`purpose of use ${purpose} is not in the vocabulary of domain ${domain}`);
    const justification = req.context.emergencyJustification;
    let emergency = false;
    if (justification !== undefined) {
      const problem = justificationProblem(
        justification,
        this.opts.justification ?? DEFAULT_JUSTIFICATION,
      );
      if (purposeDef && !purposeDef.emergency)
        errors.push(
          `break-glass is for emergency treatment: purpose ${purpose} cannot break the glass (${[
            ...(d?.purposes ?? []),
          ]
            .filter(([, p]) => p.emergency)
            .map(([c]) => c)
            .join(', ')})`,
        );
      else if (problem) refused.push(problem);
      else emergency = true;
    }

    const file = d?.file;
    const hour = file ? localHour(now, file.timeZone ?? 'UTC') : 0;
    const context = {
      treatment,
      purpose,
      hour,
      workingStart: file?.workingHours?.start ?? 0,
      workingEnd: file?.workingHours?.end ?? 24,
      emergency,
      traceInserted: req.context.traceInserted ?? false,
      delegated,
    };
    const heldRoles = held ?? roles;
    const summary = {
      principal: me.id,
      organization: me.organization,
      roles: [...roles].sort(),
      ...(held ? { held: [...held].sort() } : {}),
      activity: req.activity,
      resource: [
        req.resource.kind,
        req.resource.study ?? req.resource.patient ?? req.resource.requester ?? '',
      ]
        .filter(Boolean)
        .join(':'),
      context: { ...context, ...(justification !== undefined ? { justification } : {}) },
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

    const call = (set: 'access' | 'obligations') =>
      cedar.statefulIsAuthorized({
        principal: { type: 'User', id: me.id },
        action: { type: 'Action', id: req.activity },
        resource: { type: 'Resource', id: 'target' },
        context,
        entities: [
          {
            uid: { type: 'User', id: me.id },
            attrs: { id: me.id, organization: me.organization, held: [...heldRoles].sort() },
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

    // Allowed: collect obligations from the permitting rules and from obligation rules that apply,
    // each obligation once (two permitting rules asking for the same log make one log).
    const obligations: (Obligation & { rule: string })[] = [];
    const add = (id: string) => {
      for (const o of d.rules.get(id)?.obligations ?? [])
        if (!obligations.some((x) => x.id === o.id && x.timing === o.timing))
          obligations.push({ ...o, rule: id });
    };
    for (const id of reasons) add(id);
    if (Object.keys(d.compiled.obligations).length) {
      const ob = call('obligations');
      if (ob.type !== 'success' || ob.response.diagnostics.errors.length)
        return deny(['the obligations of this access could not be determined'], reasons);
      for (const id of [...ob.response.diagnostics.reason].sort()) add(id);
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
