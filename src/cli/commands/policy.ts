/**
 * `ztv policy check FILE…` validates policy files (a domain's file with its ancestors) and prints each
 * rule with its compiled Cedar form; `ztv policy explain FILE… --request REQ.json` decides a request
 * described in JSON and prints the decision, the rules that made it and the obligations.
 */
import { readInput } from '../common.ts';
import { EXIT, parse, requireString, UsageError } from '../common.ts';
import { fromUtf8 } from '../../core/bytes.ts';
import { ZtvError } from '../../core/errors.ts';
import { PolicyEngine, type AccessRequest } from '../../services/policy/engine.ts';

const readJson = (path: string, what: string): unknown => {
  try {
    return JSON.parse(fromUtf8(readInput(path, what)));
  } catch (e) {
    if (e instanceof ZtvError) throw e;
    throw new ZtvError('bad-input', `${what} ${path} is not JSON: ${(e as Error).message}`);
  }
};

/** Offline, no statement can be checked: they are reported as refused, never trusted. */
const offline = {
  resolveIssuer: async () => undefined,
  resolveClinician: async () => undefined,
  holdsRole: async () => false,
};

export async function policyCommand(args: string[]): Promise<number> {
  const usage =
    'ztv policy check FILE... | ztv policy explain FILE... --request REQUEST.json [--domain OID]';
  const [sub, ...rest] = args;
  if (sub !== 'check' && sub !== 'explain')
    throw new UsageError(`unknown policy command ${sub ?? ''}\nusage: ${usage}`);
  const { values, positionals } = parse(
    rest,
    { request: { type: 'string' }, domain: { type: 'string' } },
    usage,
  );
  if (positionals.length === 0) throw new UsageError(`expected policy files\nusage: ${usage}`);
  const engine = await PolicyEngine.load(
    positionals.map((f) => readJson(f, 'policy file')),
    offline,
  );
  const last = engine.files.at(-1)!;
  if (sub === 'check') {
    for (const f of engine.files) {
      console.log(
        `# ${f.id} v${f.version} — ${f.name}\n# domain ${f.domain}${f.parent ? ` (in ${f.parent})` : ''}; authority: ${f.authority}`,
      );
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
  const raw = readJson(requireString(values, 'request', usage), 'request') as AccessRequest & {
    context: { time?: string };
  };
  const request: AccessRequest = {
    ...raw,
    context: { ...raw.context, ...(raw.context?.time ? { time: new Date(raw.context.time) } : {}) },
  };
  const domain = typeof values.domain === 'string' ? values.domain : last.domain;
  const d = await engine.decide(domain, request);
  console.log(JSON.stringify(d, null, 2));
  return d.decision === 'allow' ? EXIT.ok : EXIT.tampered;
}
