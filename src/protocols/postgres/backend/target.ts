import type { ResourceConfig } from '../../../config/schema.js';
import type { BackendTarget } from './connect.js';

/** Where and as whom Sluice connects for a resource: its upstream with one grant's credential. */
export function backendTarget(resource: ResourceConfig, credential: { user: string; password: string }, ca: string | undefined): BackendTarget {
  const up = resource.upstream;
  return {
    host: up.host,
    port: up.port,
    database: up.database,
    user: credential.user,
    password: credential.password,
    tls: { mode: up.tls.mode, ca, serverName: up.tls.server_name },
    connectTimeoutMs: up.connect_timeout * 1000,
  };
}
