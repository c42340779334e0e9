import type { Command } from 'commander';
import { GRANTS, type GrantName, type SluiceConfig } from '../../config/schema.js';
import { loadConfigFile, resolveCredentials } from '../../config/load.js';
import { resolveSecret } from '../../config/secrets.js';
import { SluiceError } from '../../errors.js';
import { judgeStatement, judgeStatements, judgeUnparseable, statementLabel, type StatementFacts, type Verdict } from '../../guard/index.js';
import type { Principal } from '../../identity/principal.js';
import { judgeMasking, type MaskVerdict } from '../../masking/judge.js';
import { resolveMasking } from '../../masking/resolve.js';
import { maskingPlanFor } from '../../masking/rules.js';
import { holdFor } from '../../approvals/rules.js';
import { decideSession } from '../../policy/index.js';
import { backendTarget } from '../../protocols/postgres/backend/target.js';
import { loadCatalogOver } from '../../protocols/postgres/masking/catalog-cache.js';
import { classify, initSqlParser } from '../../sql/index.js';
import { findConfigFile } from '../config-file.js';

interface ExplainOptions {
  config?: string;
  subject: string;
  groups: string;
  issuer?: string;
  kind: string;
  resource: string;
  grant: string;
  json?: boolean;
}

/**
 * `sluice policy explain`: what the guard would decide for a statement, with
 * the facts it judged and the rule that decided, so policies can be tried
 * before they are deployed. Exits 1 when the statement would be denied.
 */
export function policyCommands(program: Command): void {
  const policy = program.command('policy').description('try policies without a running gateway');
  policy
    .command('explain')
    .description('classify SQL and show the facts and the verdict for a principal, resource and grant')
    .argument('<sql>', 'the statement(s) to judge, as a client would send them')
    .option('--config <file>', 'sluice.yaml')
    .requiredOption('--subject <name>', 'subject of the principal')
    .option('--groups <list>', 'comma-separated groups (with the issuer prefix if any)', '')
    .option('--issuer <url>', 'issuer of the principal; default: the only configured issuer')
    .option('--kind <kind>', 'person or machine', 'person')
    .requiredOption('--resource <name>', 'resource the session is on')
    .requiredOption('--grant <grant>', `session grant: ${GRANTS.join(', ')}`)
    .option('--json', 'print the facts and verdicts as JSON')
    .action(async (sql: string, o: ExplainOptions) => {
      const { config } = loadConfigFile(findConfigFile(o.config));
      if (!(GRANTS as readonly string[]).includes(o.grant)) throw new SluiceError('grant_invalid', `--grant must be one of ${GRANTS.join(', ')}`);
      if (o.kind !== 'person' && o.kind !== 'machine') throw new SluiceError('kind_invalid', '--kind must be person or machine');
      const issuer = o.issuer ?? (config.identity.issuers.length === 1 ? config.identity.issuers[0]!.issuer : '');
      const now = Math.floor(Date.now() / 1000);
      const principal: Principal = {
        issuer,
        subject: o.subject,
        kind: o.kind,
        groups: o.groups.split(',').map((g) => g.trim()).filter(Boolean),
        claims: {},
        expiresAt: now + 3600,
      };
      const grant = o.grant as GrantName;
      const session = decideSession(config.policies, { principal, resource: o.resource, grant, now });

      await initSqlParser();
      const classified = classify(sql);
      const context = { principal, resource: o.resource, grant, policies: config.policies };
      const statements: StatementFacts[] = classified.ok ? classified.statements : [];
      const each = statements.map((facts) => judgeStatement({ ...context, facts }));
      const verdict: Verdict = classified.ok ? judgeStatements({ ...context, statements }) : judgeUnparseable(`${classified.reason}: ${classified.message}`);
      const masking = verdict.action === 'allow' ? await explainMasking(config, principal, o.resource, grant, statements) : undefined;
      const held = verdict.action === 'allow' ? holdFor(config.policies, principal, o.resource, statements) : undefined;
      const approval = held ? { policy: held.policy, mode: held.rule.mode, ...(held.rule.rows_over !== undefined ? { rowsOver: held.rule.rows_over } : {}), required: held.rule.required } : undefined;

      if (o.json) {
        process.stdout.write(JSON.stringify({ session, statements: statements.map((facts, i) => ({ facts, verdict: each[i] })), verdict, ...(masking ? { masking } : {}), ...(approval ? { approval } : {}) }, null, 2) + '\n');
      } else {
        const out: string[] = [];
        out.push(session.allowed ? `session: allowed by policy ${session.policy}` : `session: denied (${session.code}): ${session.message}`);
        statements.forEach((facts, i) => {
          out.push('', `statement ${i + 1}: ${statementLabel(facts)} (${facts.kind})`);
          const list = (name: string, v: readonly string[] | undefined) => v && v.length > 0 && out.push(`  ${name}: ${v.join(', ')}`);
          list('tables read', facts.tablesRead);
          list('tables written', facts.tablesWritten);
          list('functions', facts.functions);
          list('effects', facts.effects);
          if (facts.setting) out.push(`  setting: ${facts.setting.name}${facts.setting.value === undefined ? '' : ` = ${facts.setting.value}`}`);
          if (facts.opaque) out.push('  opaque: yes');
          out.push(`  verdict: ${describe(each[i]!)}`);
        });
        out.push('', `message: ${describe(verdict)}`);
        if (masking) out.push(`masking (policies ${masking.policies.join(', ')}): ${describeMasking(masking)}`);
        if (approval) {
          const when = approval.rowsOver !== undefined ? ` when it changes more than ${approval.rowsOver} rows` : '';
          out.push(`approval: held by policy ${approval.policy}${when} for ${approval.required === 1 ? 'one approver' : `${approval.required} approvers`} (${approval.mode === 'wait' ? 'the session waits' : 'fails now; the identical re-run runs once after approval'})`);
        }
        process.stdout.write(out.join('\n') + '\n');
      }
      if (!session.allowed || verdict.action === 'deny' || masking?.verdict?.action === 'deny') process.exitCode = 1;
    });
}

function describe(v: Verdict): string {
  return v.action === 'allow' ? `allow (rule ${v.rule})` : `deny (rule ${v.rule}, SQLSTATE ${v.sqlstate}): ${v.reason}`;
}

interface MaskingExplanation {
  readonly policies: readonly string[];
  readonly verdict?: MaskVerdict;
  /** Why the masking verdict could not be computed (the catalog could not be read). */
  readonly unavailable?: string;
}

/**
 * The masking verdict needs the resource's catalog (which columns exist,
 * what views are made of): it is read with the credential of the grant,
 * as the gateway would. Undefined when no masking policy covers the
 * principal.
 */
async function explainMasking(config: SluiceConfig, principal: Principal, resource: string, grant: GrantName, statements: StatementFacts[]): Promise<MaskingExplanation | undefined> {
  const plan = maskingPlanFor(config.policies, principal, resource);
  const res = config.resources.find((r) => r.name === resource);
  if (!plan || !res) return undefined;
  try {
    const credential = resolveCredentials(config).get(resource)?.get(grant);
    if (!credential) return { policies: plan.policies, unavailable: `resource ${resource} has no credential for grant ${grant}` };
    const ca = res.upstream.tls.ca ? resolveSecret(res.upstream.tls.ca, 'upstream.tls.ca') : undefined;
    const catalog = await loadCatalogOver(backendTarget(res, credential, ca));
    return { policies: plan.policies, verdict: judgeMasking(statements, resolveMasking(plan, catalog)) };
  } catch (err) {
    return { policies: plan.policies, unavailable: `the catalog of ${resource} could not be read: ${(err as Error).message}` };
  }
}

function describeMasking(m: MaskingExplanation): string {
  if (!m.verdict) return `not judged: ${m.unavailable}`;
  if (m.verdict.action === 'deny') return `deny (rule ${m.verdict.rule}, SQLSTATE ${m.verdict.sqlstate}): ${m.verdict.reason}`;
  return m.verdict.maskAll ? 'allow, every column of the result masked' : 'allow, masked columns masked by origin';
}
