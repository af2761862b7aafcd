// The metrics listener: GET /metrics (Prometheus text format) and GET /healthz
// (200 or 503 with a JSON body), on its own address, apart from mail traffic.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { MailfrontError } from './errors.js';
import { parseListenAddress } from './config/address.js';

export type HealthCheck = () => { ok: boolean; detail: object };

export interface MetricsServer {
  /** The bound address, "127.0.0.1:9187" or "[::1]:9187" (the real port when 0 was asked). */
  address: string;
  close(): Promise<void>;
}

function formatAddress(a: AddressInfo): string {
  return a.family === 'IPv6' ? `[${a.address}]:${a.port}` : `${a.address}:${a.port}`;
}

async function handle(req: http.IncomingMessage, res: http.ServerResponse, registry: Registry, health: HealthCheck) {
  if (req.method !== 'GET' && req.method !== 'HEAD') {
    res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain; charset=utf-8' });
    res.end('method not allowed\n');
    return;
  }
  const path = (req.url ?? '/').split('?', 1)[0];
  let status = 200;
  let type: string;
  let body: string;
  if (path === '/metrics') {
    type = registry.contentType;
    body = await registry.metrics();
  } else if (path === '/healthz') {
    const h = health();
    status = h.ok ? 200 : 503;
    type = 'application/json';
    body = `${JSON.stringify({ ...h.detail, status: h.ok ? 'ok' : 'unhealthy' })}\n`;
  } else {
    status = 404;
    type = 'text/plain; charset=utf-8';
    body = 'not found: try /metrics or /healthz\n';
  }
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

/**
 * Starts the HTTP listener. Bind failures reject with MF_LISTEN and a message
 * naming the address, e.g. "metrics listener 127.0.0.1:9187: EADDRINUSE ...".
 */
export async function startMetricsServer(listen: string, registry: Registry, health: HealthCheck): Promise<MetricsServer> {
  // metrics.listen passed the configuration's check; this names the address if a caller skipped it.
  const hp = parseListenAddress(listen);
  if (typeof hp === 'string' || hp.kind !== 'tcp') throw new MailfrontError('MF_LISTEN', `metrics listener ${listen}: ${typeof hp === 'string' ? hp : 'not ip:port'}`);
  const server = http.createServer((req, res) => {
    handle(req, res, registry, health).catch((err: unknown) => {
      if (res.headersSent) return void res.destroy();
      res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${err instanceof Error ? err.message : String(err)}\n`);
    });
  });
  // A scraper is a single well-behaved client: keep slow or idle ones short.
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;
  await new Promise<void>((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      // Node's text is "listen EADDRINUSE: address already in use 127.0.0.1:9187".
      const why = err.message.replace(/^listen \w+: /, '');
      reject(new MailfrontError('MF_LISTEN', `metrics listener ${listen}: ${err.code ?? 'error'} ${why}`, { cause: err }));
    };
    server.once('error', onError);
    server.listen({ host: hp.host, port: hp.port, exclusive: true }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  return {
    address: formatAddress(server.address() as AddressInfo),
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}
