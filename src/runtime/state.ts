import type { SecureContext } from 'node:tls';
import type { ResourceConfig, SluiceConfig } from '../config/schema.js';
import type { ResolvedCredential } from '../config/load.js';
import type { Authenticator } from '../identity/principal.js';

/**
 * Everything derived from one version of the configuration. A reload builds
 * a whole new state and swaps it in at once, so a connection never sees half
 * of an old and half of a new configuration.
 */
export interface GatewayState {
  readonly config: SluiceConfig;
  readonly authenticator: Authenticator;
  readonly resources: ReadonlyMap<string, ResourceConfig>;
  /** Backend credentials per resource and grant, resolved from secret references; memory only. */
  readonly credentials: ReadonlyMap<string, ReadonlyMap<string, ResolvedCredential>>;
  /** Resolved CA bundles for resources with tls.mode verify-full. */
  readonly backendCas: ReadonlyMap<string, string>;
  /** Server TLS for client connections; undefined when only plaintext is configured. */
  readonly tls?: SecureContext;
}
