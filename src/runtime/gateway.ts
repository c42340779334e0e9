import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { CheckpointWriter } from '../audit/checkpoint-writer.js';
import { SqliteAuditStore } from '../audit/sqlite-audit-store.js';
import { loadConfigFile, parseHostPort } from '../config/load.js';
import type { SluiceConfig } from '../config/schema.js';
import { EventPipeline } from '../events/pipeline.js';
import { Keyring } from '../keys/keyring.js';
import { createLogger, type Logger } from '../observability/log.js';
import { GatewayMetrics } from '../observability/metrics.js';
import { PostgresListener } from '../protocols/postgres/listener.js';
import { createHttpServer } from '../server/http.js';
import { SessionRegistry } from '../sessions/registry.js';
import { initSqlParser } from '../sql/index.js';
import { accessGrantsOf, authorizeSession } from './authorize-session.js';
import { CatalogCache } from '../protocols/postgres/masking/catalog-cache.js';
import { maskingPlanFor, maskingPlanKey } from '../masking/rules.js';
import { buildState, publicUrl, serverTlsPems } from './build-state.js';
import { configFingerprint } from '../config/fingerprint.js';
import { ApprovalService } from '../approvals/service.js';
import { SqliteApprovalStore } from '../approvals/sqlite-approval-store.js';
import { decidePermission } from '../policy/index.js';
import { NotificationMetrics } from '../approvals/notify/metrics.js';
import { Notifier } from '../approvals/notify/notifier.js';
import type { GatewayState } from './state.js';
import type { AccessGrant } from '../policy/decide.js';

export interface GatewayOptions {
  readonly config: SluiceConfig;
  /** The file the config came from; enables reload (SIGHUP, file watch). */
  readonly configFile?: string;
  readonly log?: Logger;
}

export interface ReloadResult {
  readonly ok: boolean;
  readonly error?: string;
  readonly terminated: number;
}

/**
 * The composition root: one store, one event pipeline, one session registry,
 * the protocol listeners and the HTTP API, all reading the current
 * GatewayState, which reload swaps as a whole.
 */
export class Gateway {
  readonly log: Logger;
  readonly metrics: GatewayMetrics;
  readonly registry = new SessionRegistry();
  readonly store: SqliteAuditStore;
  readonly events: EventPipeline;
  readonly keyring: Keyring;
  readonly approvals: ApprovalService;
  private readonly approvalStore: SqliteApprovalStore;
  private readonly notificationMetrics: NotificationMetrics;
  private notifier: Notifier;
  /** Notifiers a reload replaced, finishing their deliveries. */
  private readonly oldNotifiers = new Set<Notifier>();
  postgresAddress = { host: '', port: 0 };
  httpAddress = { host: '', port: 0 };
  private current: GatewayState;
  private readonly postgres: PostgresListener;
  private readonly http: FastifyInstance;
  private watcher?: FSWatcher;
  private checkpoints?: CheckpointWriter;
  private stopping = false;
  private reloading: Promise<ReloadResult> | undefined;
  private reloadAgain: Promise<ReloadResult> | undefined;

  private constructor(
    private readonly opts: GatewayOptions,
    state: GatewayState,
    keyring: Keyring,
    store: SqliteAuditStore,
    approvalStore: SqliteApprovalStore,
    boot: { metrics: GatewayMetrics; notificationMetrics: NotificationMetrics; notifier: Notifier; log: Logger },
    https?: { cert: string; key: string },
  ) {
    this.log = boot.log;
    this.metrics = boot.metrics;
    this.notificationMetrics = boot.notificationMetrics;
    this.notifier = boot.notifier;
    this.current = state;
    this.keyring = keyring;
    this.store = store;
    this.events = new EventPipeline(store);
    this.approvalStore = approvalStore;
    this.approvals = new ApprovalService({
      store: approvalStore,
      events: this.events,
      policies: () => this.current.config.policies,
      baseUrl: () => this.linkBase(),
      log: this.log,
      hashKey: keyring.secret('approvals'),
      seesAll: (p) => decidePermission(this.current.config.policies, p, 'approvals:read').allowed,
      metrics: this.metrics,
      // A reload may replace the notifier; the service keeps calling whichever is current.
      notifier: { notify: (type, status) => this.notifier.notify(type, status) },
    });
    const ctx = {
      log: this.log,
      registry: this.registry,
      events: this.events,
      metrics: this.metrics,
      state: () => this.current,
      catalogs: new CatalogCache(),
      maskingKey: keyring.secret('masking'),
      approvals: this.approvals,
    };
    this.postgres = new PostgresListener(ctx);
    this.http = createHttpServer({
      state: () => this.current,
      store,
      registry: this.registry,
      metrics: this.metrics,
      jwks: () => keyring.jwks(),
      notReady: () => this.notReady(),
      approvals: this.approvals,
      https,
      log: this.log,
    });
  }

  static async start(opts: GatewayOptions): Promise<Gateway> {
    const cfg = opts.config;
    // Every statement is judged with the PostgreSQL parser, so it must be loaded before the first session.
    await initSqlParser();
    const keyring = await Keyring.load(cfg.keys, cfg.store.data_dir);
    const state = await buildState(cfg, keyring);
    const log = opts.log ?? createLogger(cfg.server.log_level);
    const metrics = new GatewayMetrics();
    const notificationMetrics = new NotificationMetrics(metrics.registry);
    // Built before the stores open: a notification secret that cannot be read refuses the start.
    const notifier = new Notifier(cfg.server.notifications, { log, metrics: notificationMetrics });
    const storePath = cfg.store.path ?? join(cfg.store.data_dir, 'sluice.db');
    const storeOptions = { synchronous: cfg.store.synchronous, busyTimeoutMs: cfg.store.busy_timeout * 1000 };
    const store = SqliteAuditStore.open({ path: storePath, ...storeOptions });
    const approvalStore = SqliteApprovalStore.open(storePath, storeOptions);
    const https = cfg.server.http.tls ? await serverTlsPems(cfg) : undefined;
    const gw = new Gateway(opts, state, keyring, store, approvalStore, { metrics, notificationMetrics, notifier, log }, https);
    try {
      gw.checkpoints = CheckpointWriter.open({
        path: storePath,
        ...storeOptions,
        key: keyring.current,
        intervalSeconds: cfg.store.checkpoints.interval,
        exportFile: cfg.store.checkpoints.export.file,
        log,
      });
      gw.checkpoints.start();
      await gw.approvals.recover();
      gw.postgresAddress = await gw.postgres.listen(cfg.server.postgres.listen);
      await gw.http.listen(parseHostPort(cfg.server.http.listen));
      const a = gw.http.server.address();
      if (typeof a === 'object' && a) gw.httpAddress = { host: a.address, port: a.port };
    } catch (err) {
      await gw.stop(0);
      throw err;
    }
    // Which configuration and policies were in force from now on, for audits (CC8.1): a hash, never the content.
    await gw.events
      .record([{ type: 'config.loaded', time: new Date().toISOString(), data: { ...(opts.configFile ? { file: opts.configFile } : {}), ...configFingerprint(cfg) } }])
      .catch((err) => gw.log.error({ err: String(err) }, 'could not record the configuration in force'));
    if (cfg.server.postgres.allow_plaintext) {
      gw.log.warn({ listen: cfg.server.postgres.listen }, 'plaintext PostgreSQL connections are allowed: tokens may cross the network unencrypted; use only on loopback for development');
    }
    if (cfg.identity.dev_issuer.enabled) gw.log.warn('the development token issuer is enabled: anyone with access to the data directory can mint tokens');
    if (opts.configFile && cfg.server.watch_config) gw.watchConfig(opts.configFile);
    gw.log.info({ postgres: gw.postgresAddress, http: gw.httpAddress }, 'sluice started');
    return gw;
  }

  state(): GatewayState {
    return this.current;
  }

  /**
   * Re-reads the config file. A bad file is refused and the old state kept.
   * Open sessions are re-authorized against the new policies and resources;
   * those no longer allowed are ended with a FATAL error naming why.
   */
  reload(): Promise<ReloadResult> {
    if (this.reloading) {
      // A change made while a reload runs must not be lost: queue one more.
      this.reloadAgain ??= this.reloading.then(() => {
        this.reloadAgain = undefined;
        return this.reload();
      });
      return this.reloadAgain;
    }
    this.reloading = this.doReload().finally(() => (this.reloading = undefined));
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    const file = this.opts.configFile;
    if (!file) return { ok: false, error: 'no config file to reload', terminated: 0 };
    let next: GatewayState;
    try {
      const { config } = loadConfigFile(file);
      const needsRestart = restartOnlyKeys(this.current.config, config);
      if (needsRestart.length) this.log.warn({ keys: needsRestart }, 'these settings take effect only after a restart');
      next = await buildState(config, this.keyring, this.current);
      // Rebuilt on every reload, so a rotated secret behind ${env:...} or ${file:...} takes effect; a missing one refuses the reload.
      const replacement = new Notifier(config.server.notifications, { log: this.log, metrics: this.notificationMetrics });
      const old = this.notifier;
      this.oldNotifiers.add(old);
      void old.idle().then(() => {
        old.close();
        this.oldNotifiers.delete(old);
      });
      this.notifier = replacement;
    } catch (err) {
      const error = (err as Error).message;
      this.log.error({ err: error }, 'configuration reload refused; the previous configuration stays in effect');
      await this.events.record([{ type: 'config.rejected', time: new Date().toISOString(), data: { file, error } }]).catch(() => undefined);
      return { ok: false, error, terminated: 0 };
    }
    const previous = this.current;
    this.current = next;
    this.log.level = next.config.server.log_level;
    let terminated = 0;
    for (const s of this.registry.list()) {
      // A session masks with the plan it opened with: when a reload changes that plan, it reconnects under the new one.
      const before = maskingPlanKey(maskingPlanFor(previous.config.policies, s.principal, s.resource));
      if (before !== maskingPlanKey(maskingPlanFor(next.config.policies, s.principal, s.resource))) {
        terminated++;
        s.terminate({ code: 'masking_changed', sqlstate: '57P01', message: 'session ended after a configuration reload changed what it must mask; reconnect' });
        continue;
      }
      // Access grants as of the real now: only grants still running, under rules still in force, count.
      // An unreadable approval store counts as none: a session cannot stay on a grant nobody can show.
      let grants: AccessGrant[] = [];
      try {
        grants = accessGrantsOf(this.approvals.activeAccess(s.principal, s.resource));
      } catch (err) {
        this.log.error({ session: s.id, err: String(err) }, 'could not read access grants during reload');
      }
      // The session's open time as "now": a token that expired since connect does not end it (decision 0001).
      const verdict = authorizeSession(next, s.principal, s.resource, s.grant, Math.floor(s.openedAt.getTime() / 1000), grants);
      if (verdict.ok) {
        if (verdict.endsAt !== undefined) s.limitEnd(new Date(verdict.endsAt * 1000), verdict.endReason);
        continue;
      }
      terminated++;
      s.terminate({ code: 'reauthorization_failed', sqlstate: '42501', message: `session ended after a configuration reload: ${verdict.message}` });
    }
    await this.events
      .record([{ type: 'config.reloaded', time: new Date().toISOString(), data: { file, ...configFingerprint(next.config), sessionsTerminated: terminated } }])
      .catch(() => undefined);
    this.log.info({ terminated }, 'configuration reloaded');
    return { ok: true, terminated };
  }

  private watchConfig(file: string): void {
    let timer: NodeJS.Timeout | undefined;
    try {
      // The directory, not the file: editors save by renaming a new file over the old one, and
      // Kubernetes swaps a ConfigMap's symlink; a watch on the file itself loses track of both.
      this.watcher = watch(dirname(file), (_event, name) => {
        if (name !== null && name !== basename(file) && !String(name).startsWith('..')) return;
        clearTimeout(timer);
        timer = setTimeout(() => void this.reload(), 200);
        timer.unref();
      });
      this.watcher.on('error', (err) => this.log.warn({ err: err.message }, 'config file watch failed; reload with SIGHUP'));
      this.watcher.unref();
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'cannot watch the config file; reload with SIGHUP');
    }
  }

  /** Where approval links point: server.public_url, else the HTTP listener as bound (its port may have been 0 in the config). */
  private linkBase(): string {
    const cfg = this.current.config;
    if (cfg.server.public_url || this.httpAddress.port === 0) return publicUrl(cfg);
    const bound = this.httpAddress.host;
    const host = bound === '0.0.0.0' || bound === '::' ? '127.0.0.1' : bound.includes(':') ? `[${bound}]` : bound;
    return `${cfg.server.http.tls ? 'https' : 'http'}://${host}:${this.httpAddress.port}`;
  }

  private notReady(): string[] {
    const reasons: string[] = [];
    if (this.stopping) reasons.push('shutting down');
    if (!this.store.healthy()) reasons.push('the audit store cannot write');
    return reasons;
  }

  /** Graceful shutdown: stop accepting, let sessions finish up to the grace period, flush the store. */
  async stop(graceSeconds = this.current.config.server.shutdown_grace): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.watcher?.close();
    // server.close() settles only once every connection has ended: awaiting it
    // before drain would wait on idle sessions forever and never start the grace period.
    void this.postgres.stopAccepting().catch(() => undefined);
    await this.postgres.drain(graceSeconds * 1000);
    await this.http.close().catch(() => undefined);
    this.approvals.close();
    this.approvalStore.close();
    // Deliveries in flight get a few seconds; retries still waiting are abandoned (and counted).
    const notifiers = [this.notifier, ...this.oldNotifiers];
    await Promise.race([Promise.all(notifiers.map((n) => n.idle())), new Promise((r) => setTimeout(r, 5000).unref())]);
    for (const n of notifiers) n.close();
    await this.store.close();
    // After the store has flushed, so the last checkpoint covers every event.
    await this.checkpoints?.stop();
    this.log.info('sluice stopped');
  }
}

/** Settings a running gateway cannot change: listeners, the store, the keys, the HTTP certificate. */
function restartOnlyKeys(before: SluiceConfig, after: SluiceConfig): string[] {
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);
  const checks: [string, unknown, unknown][] = [
    ['server.postgres.listen', before.server.postgres.listen, after.server.postgres.listen],
    ['server.http', before.server.http, after.server.http],
    ['server.watch_config', before.server.watch_config, after.server.watch_config],
    ['store', before.store, after.store],
    ['keys', before.keys, after.keys],
  ];
  return checks.filter(([, a, b]) => !same(a, b)).map(([k]) => k);
}
