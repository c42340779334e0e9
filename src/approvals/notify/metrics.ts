import { Counter, type Registry } from 'prom-client';

/**
 * Notification delivery metrics. `outcome` of a delivery: delivered,
 * rejected (a 3xx or 4xx other than 429: retrying cannot help), exhausted
 * (max_attempts used up), abandoned (the notifier closed while retrying),
 * unbuildable (the payload could not be built; logged with the request id).
 */
export class NotificationMetrics {
  readonly deliveries: Counter<'target' | 'channel' | 'event' | 'outcome'>;
  readonly failedAttempts: Counter<'target' | 'channel' | 'reason'>;

  constructor(registry: Registry) {
    this.deliveries = new Counter({
      name: 'sluice_notification_deliveries_total',
      help: 'Approval notifications by target and final outcome (delivered, rejected, exhausted, abandoned, unbuildable)',
      labelNames: ['target', 'channel', 'event', 'outcome'],
      registers: [registry],
    });
    this.failedAttempts = new Counter({
      name: 'sluice_notification_failed_attempts_total',
      help: 'Notification delivery attempts that failed, by reason (http_<status>, timeout, network)',
      labelNames: ['target', 'channel', 'reason'],
      registers: [registry],
    });
  }
}
