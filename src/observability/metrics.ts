import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** The gateway's Prometheus metrics, served at /metrics. */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly sessionsActive = new Gauge({ name: 'sluice_sessions_active', help: 'Live sessions', labelNames: ['protocol'], registers: [this.registry] });
  readonly sessionsOpened = new Counter({
    name: 'sluice_sessions_opened_total',
    help: 'Sessions opened',
    labelNames: ['protocol', 'resource', 'grant'],
    registers: [this.registry],
  });
  readonly refusals = new Counter({
    name: 'sluice_session_refusals_total',
    help: 'Connections refused, by reason code',
    labelNames: ['protocol', 'reason'],
    registers: [this.registry],
  });
  readonly statements = new Counter({
    name: 'sluice_statements_total',
    help: 'Statements forwarded',
    labelNames: ['protocol', 'resource'],
    registers: [this.registry],
  });
  readonly statementErrors = new Counter({
    name: 'sluice_statements_failed_total',
    help: 'Statements that ended with an error',
    labelNames: ['protocol', 'resource'],
    registers: [this.registry],
  });
  readonly bytes = new Counter({
    name: 'sluice_bytes_total',
    help: 'Bytes relayed, by direction',
    labelNames: ['protocol', 'direction'],
    registers: [this.registry],
  });
  readonly backendConnect = new Histogram({
    name: 'sluice_backend_connect_seconds',
    help: 'Time to connect and authenticate to a backend',
    labelNames: ['resource'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly statementDenials = new Counter({
    name: 'sluice_statements_denied_total',
    help: 'Statements refused before they ran, by the rule that refused them (sluice-masking for masking)',
    labelNames: ['protocol', 'resource', 'rule'],
    registers: [this.registry],
  });
  readonly maskedMessages = new Counter({
    name: 'sluice_masked_messages_total',
    help: 'Backend messages (rows, COPY rows, errors, notices, notifications) rewritten by masking',
    labelNames: ['resource'],
    registers: [this.registry],
  });
  readonly heldStatements = new Gauge({
    name: 'sluice_statements_held',
    help: 'Statements waiting in a session for an approval decision',
    labelNames: ['resource'],
    registers: [this.registry],
  });
  readonly approvalRequests = new Counter({
    name: 'sluice_approval_requests_total',
    help: 'Approval requests opened, by kind (statement, access) and resource',
    labelNames: ['kind', 'resource'],
    registers: [this.registry],
  });
  readonly approvalDecisions = new Counter({
    name: 'sluice_approval_decisions_total',
    help: 'Approver decisions recorded, by decision (approve, deny)',
    labelNames: ['decision'],
    registers: [this.registry],
  });
  readonly auditFailures = new Counter({
    name: 'sluice_audit_write_failures_total',
    help: 'Audit writes that failed (the statement or session they describe was refused)',
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
