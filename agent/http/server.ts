// The agent's local /health and /metrics, on node:http to keep the single binary small.
import { createServer, type Server } from 'node:http';
import type { DeviceMetrics } from '../device-metrics.js';
import type { AgentMetrics } from '../metrics.js';

export interface AgentHttp {
  readonly port: number;
  close(): Promise<void>;
}

export async function startAgentHttp(o: { host: string; port: number; metrics: AgentMetrics; deviceMetrics?: DeviceMetrics; health: () => Record<string, unknown> & { ok: boolean } }): Promise<AgentHttp> {
  const server: Server = createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method === 'GET' && path === '/health') {
      const h = o.health();
      res.writeHead(h.ok ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify(h));
    } else if (req.method === 'GET' && path === '/metrics') {
      o.metrics.registry.metrics().then(
        // the agent's own metrics, then the devices' readings chunk by chunk (agent/device-metrics.ts)
        async (body) => {
          res.writeHead(200, { 'content-type': o.metrics.registry.contentType });
          res.write(body);
          for (const chunk of o.deviceMetrics?.chunks() ?? []) {
            if (res.destroyed) return;
            if (!res.write(chunk)) await new Promise<void>((resolve) => {
              const done = () => {
                res.off('drain', done);
                res.off('close', done);
                resolve();
              };
              res.on('drain', done);
              res.on('close', done);
            });
          }
          res.end();
        },
        () => res.writeHead(500).end(),
      ).catch(() => res.destroy());
    } else {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: { code: 'not_found', message: `no route ${req.method} ${path}` } }));
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(o.port, o.host, () => resolve());
  });
  const addr = server.address();
  let closing: Promise<void> | null = null;
  return {
    port: typeof addr === 'object' && addr ? addr.port : o.port,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      return closing;
    },
  };
}
