// The plain-Node peer: tls.createServer + SNICallback + net pipe, one process, Node's defaults.
//   node bench/node-proxy.mjs --pems DIR --default NAME --listen 24401:24001 [--listen 24402:24002]
// Each combined PEM file DIR/<name>.pem (chain + key) gives one SecureContext, looked up by SNI.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: { pems: { type: 'string' }, default: { type: 'string' }, listen: { type: 'string', multiple: true } },
});
const contexts = new Map();
for (const f of fs.readdirSync(values.pems)) {
  if (!f.endsWith('.pem')) continue;
  const pem = fs.readFileSync(path.join(values.pems, f), 'utf8');
  const cert = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n/g).join('');
  const key = pem.match(/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]+?-----END [A-Z ]*PRIVATE KEY-----\n/)[0];
  contexts.set(f.slice(0, -4), { cert, key, ctx: tls.createSecureContext({ cert, key }) });
}
const def = contexts.get(values.default);
if (!def) throw new Error(`no certificate for the default name ${values.default}`);

for (const spec of values.listen ?? []) {
  const [port, backendPort] = spec.split(':').map(Number);
  const server = tls.createServer(
    {
      cert: def.cert,
      key: def.key,
      SNICallback: (name, cb) => cb(null, (contexts.get(name) ?? def).ctx),
    },
    (client) => {
      const backend = net.connect({ port: backendPort, host: '127.0.0.1', noDelay: true });
      client.setNoDelay(true);
      const end = () => { client.destroy(); backend.destroy(); };
      client.on('error', end);
      backend.on('error', end);
      client.pipe(backend);
      backend.pipe(client);
    },
  );
  server.on('tlsClientError', () => {});
  server.listen(port, '127.0.0.1', () => console.log(JSON.stringify({ event: 'listening', port })));
}
