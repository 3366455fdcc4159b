/**
 * OrBAC rules compiled to Cedar: one Cedar policy per rule, carrying the rule's identity, type and
 * obligations as annotations; permissions become `permit`, prohibitions `forbid … unless { exceptions }`,
 * and obligation rules go to a second policy set evaluated only once access is allowed. A rule's
 * purposes become a membership test on the declared purpose. The schema types every entity and
 * context attribute, so Cedar validates requests and the policies strictly.
 */
import type { ContextName, EffectivePolicy, PolicyFile, Rule } from './model.ts';

const q = (s: string): string => JSON.stringify(s);
const set = (xs: readonly string[]): string => `[${xs.map(q).join(', ')}]`;

/** What compiling needs from the vocabulary: the clinical structural roles. */
export type Vocabulary = Pick<EffectivePolicy, 'roles'>;

const clinicalRoles = (v: Vocabulary): string[] =>
  [...v.roles].filter(([, d]) => d.kind === 'structural' && d.clinical).map(([n]) => n);

/**
 * The Cedar expression of an OrBAC context. Over the person (`holder: "person"`), roles are those the
 * requester holds in their hospital's directory (`principal.held`), not only this request's.
 */
export function contextExpr(
  c: ContextName,
  v: Vocabulary,
  holder: 'session' | 'person' = 'session',
): string {
  switch (c) {
    case 'default':
      return 'true';
    case 'treatment':
      return 'context.treatment';
    case 'working-hours':
      return '(context.hour >= context.workingStart && context.hour < context.workingEnd)';
    case 'outside-working-hours':
      return '!(context.hour >= context.workingStart && context.hour < context.workingEnd)';
    case 'emergency':
      return 'context.emergency';
    case 'watermark-update':
      return 'context.traceInserted';
    case 'own-request':
      return 'resource.requester == principal.id';
    case 'delegated':
      return 'context.delegated';
    case 'clinical-role': {
      const clinical = clinicalRoles(v);
      if (clinical.length === 0) return 'false';
      return holder === 'person'
        ? `principal.held.containsAny(${set(clinical)})`
        : `(${clinical.map((r) => `principal in Role::${q(r)}`).join(' || ')})`;
    }
    default:
      throw new Error(`no Cedar expression for context ${String(c)}`);
  }
}

/** One rule as Cedar policy text. */
export function compileRule(r: Rule, v: Vocabulary): string {
  const holder = r.holder ?? 'session';
  const annotations = [
    `@id(${q(r.id)})`,
    `@orbac(${q(r.type)})`,
    ...(r.obligations?.length
      ? [`@obligations(${q(r.obligations.map((o) => `${o.id}:${o.timing}`).join(','))})`]
      : []),
  ];
  const effect = r.type === 'prohibition' ? 'forbid' : 'permit';
  const byRole = r.role !== '*' && holder === 'session';
  const principal = byRole ? `principal in Role::${q(r.role)}` : 'principal';
  const action = r.activity === '*' ? 'action' : `action == Action::${q(r.activity)}`;
  const when = [
    ...(r.role !== '*' && holder === 'person' ? [`principal.held.contains(${q(r.role)})`] : []),
    ...(r.organization === '*' ? [] : [`principal.organization == ${q(r.organization)}`]),
    ...(r.view === '*' ? [] : [`resource.kind == ${q(r.view)}`]),
    ...(r.purposes ? [`${set(r.purposes)}.contains(context.purpose)`] : []),
    contextExpr(r.context, v, holder),
  ].filter((c, _i, all) => c !== 'true' || all.length === 1);
  const unless = r.except?.length
    ? `\nunless { ${r.except.map((c) => contextExpr(c, v)).join(' || ')} }`
    : '';
  return `${annotations.join('\n')}\n${effect} (${principal}, ${action}, resource)\nwhen { ${when.join(' && ')} }${unless};`;
}

export interface CompiledDomain {
  readonly domain: string;
  /** Access rules (permissions and prohibitions), keyed by rule id. */
  readonly access: Record<string, string>;
  /** Obligation rules, keyed by rule id. */
  readonly obligations: Record<string, string>;
}

export function compileDomain(
  domain: string,
  rules: readonly Rule[],
  v: Vocabulary,
): CompiledDomain {
  const access: Record<string, string> = {};
  const obligations: Record<string, string> = {};
  for (const r of rules) (r.type === 'obligation' ? obligations : access)[r.id] = compileRule(r, v);
  return { domain, access, obligations };
}

/** The Cedar schema for a set of policy files: their activities are the actions. */
export function cedarSchema(files: readonly PolicyFile[]): string {
  const activities = [...new Set(files.flatMap((f) => f.operations))].sort();
  return `entity Role;
entity User in [Role] {
  id: String,
  organization: String,
  held: Set<String>,
};
entity Resource {
  kind: String,
  requester: String,
};
type RequestContext = {
  treatment: Bool,
  purpose: String,
  hour: Long,
  workingStart: Long,
  workingEnd: Long,
  emergency: Bool,
  traceInserted: Bool,
  delegated: Bool,
};
${activities.map((a) => `action ${q(a)} appliesTo { principal: [User], resource: [Resource], context: RequestContext };`).join('\n')}
`;
}
