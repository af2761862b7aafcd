// The programmatic API (package.json "main"): what `mailfront run` does, from code.
//
//   import { start } from 'mailfront';
//   const mf = await start({ configPath: '/etc/mailfront/mailfront.yaml' });
//   await mf.reload('certificates renewed');   // false: refused, the previous config goes on serving
//   await mf.stop();                           // drains for timeouts.drain, then closes the rest
//
// Everything here is service.ts and config/load.ts as the CLI uses them; no logic of its own.
import { Service, type ServiceOptions } from './service.js';

export { loadConfig } from './config/load.js';
export type { Config } from './config/schema.js';
export { ErrorCodes, MailfrontError, type ErrorCode } from './errors.js';
export { createLogger, type Logger, type LoggerOptions } from './log.js';
export { Service, VERSION, type ServiceOptions } from './service.js';

/**
 * Loads the config at options.configPath and its certificates, and serves them: resolves once
 * every listener is bound (rejects with a MailfrontError otherwise). No signal handlers unless
 * options.signals. The Service it returns has reload(why), stop(), config, bound (the listening
 * addresses) and metrics.registry (prom-client).
 */
export async function start(options: ServiceOptions): Promise<Service> {
  const service = new Service(options);
  await service.start();
  return service;
}
