// Waits until something accepts on 127.0.0.1:port. No imports with side effects:
// cert-store.mjs, which has its own flags, uses it too.
import net from 'node:net';

export function waitPort(port, ms = 20000) {
  const deadline = Date.now() + ms;
  return new Promise((resolve, reject) => {
    const attempt = () => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => { s.destroy(); resolve(); });
      s.once('error', () => {
        s.destroy();
        if (Date.now() > deadline) reject(new Error(`port ${port} not listening after ${ms} ms`));
        else setTimeout(attempt, 100);
      });
    };
    attempt();
  });
}
