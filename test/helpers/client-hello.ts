// A real TLS ClientHello sent from a chosen loopback address over a raw TCP
// socket, to check that a refused client gets no ServerHello: the server's
// answer is read as bytes, nothing is parsed. Every wait is bounded.
import net from 'node:net';
import tls from 'node:tls';

let cached: Buffer | undefined;

/** The first flight of Node's TLS client (a ClientHello naming <servername>), captured once. */
export async function clientHello(servername = 'mail.example.com'): Promise<Buffer> {
  if (cached) return cached;
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  try {
    cached = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no ClientHello within 5 s')), 5000);
      server.once('connection', (s) => s.once('data', (d: Buffer) => {
        clearTimeout(timer);
        s.destroy();
        resolve(d);
      }));
      const c = tls.connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false });
      c.on('error', () => {});
    });
    return cached;
  } finally {
    server.close();
  }
}

export interface HelloAnswer {
  /** Bytes the server sent back (a ServerHello would be at least one TLS record). */
  bytes: Buffer;
  /** The server closed (or reset) the connection within the time given. */
  closed: boolean;
}

/** Sends a ClientHello from <localAddress>; resolves at the first byte back (a ServerHello), at close, or after <ms>. */
export async function sendHello(port: number, localAddress: string, ms = 3000, host = '127.0.0.1'): Promise<HelloAnswer> {
  const hello = await clientHello();
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host, port, localAddress });
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => done(false), ms);
    s.on('connect', () => s.write(hello));
    s.on('data', (d) => {
      chunks.push(d);
      done(false);
    });
    s.on('error', () => {});
    s.on('close', () => done(true));
  });
}

/** Plain TCP from <localAddress>: what a STARTTLS listener says first, until close or <ms>. */
export async function readPlain(port: number, localAddress: string, ms = 3000, host = '127.0.0.1'): Promise<HelloAnswer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    const s = net.connect({ host, port, localAddress });
    const done = (closed: boolean) => {
      clearTimeout(timer);
      s.destroy();
      resolve({ bytes: Buffer.concat(chunks), closed });
    };
    const timer = setTimeout(() => done(false), ms);
    s.on('data', (d) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => done(true));
  });
}
