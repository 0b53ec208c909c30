// A real nginx as an upstream that accepts only the gateway, configured as docs/upstream.md, "Making the upstream
// accept only the gateway" says: ssl_verify_client on with the gateway's dedicated CA, and the
// gateway's subject DN pinned. One process (master_process off) on a free 127.0.0.1 port, killed
// at test end and when the test process exits. Its one location echoes the client certificate it
// verified as JSON; its access log records every request it answered.
import { existsSync, readFileSync } from 'node:fs'
import { mkdtemp, writeFile } from 'node:fs/promises'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { findFreePort } from './ports.ts'
import { createManagedProcess, waitUntil } from './redis.ts'

const NGINX_BINARY = '/usr/sbin/nginx'

export const nginxAvailable = existsSync(NGINX_BINARY)

export interface MtlsNginxOptions {
  /** Server certificate followed by its intermediates, and its key. */
  readonly certPem: string
  readonly keyPem: string
  /** The CA(s) whose client certificates nginx accepts. */
  readonly clientCaPem: string
  /** The one subject DN (RFC 2253, as nginx writes it) served; others get 403. */
  readonly allowedClientDn: string
  /** Paths under /accounts/slow/ are proxied to this 127.0.0.1 port, with the client certificate's serial in x-client-serial. */
  readonly slowBackendPort: number
}

/** What nginx echoes for a request it served. */
export interface NginxEcho {
  readonly clientDn: string
  readonly clientSerial: string
  readonly verify: string
  readonly uri: string
  readonly interactionId: string
}

export interface AccessLogLine {
  readonly status: number
  readonly verify: string
  readonly clientDn: string
  readonly uri: string
}

export interface MtlsNginx {
  readonly url: string
  /** Every request nginx answered so far, in order. */
  accessLog(): AccessLogLine[]
  close(): Promise<void>
}

function configuration(dir: string, port: number, options: MtlsNginxOptions): string {
  return `
daemon off;
master_process off;
worker_processes 1;
error_log stderr warn;
pid ${dir}/nginx.pid;
events { worker_connections 64; }
http {
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  log_format echo escape=json '$status\\t$ssl_client_verify\\t$ssl_client_s_dn\\t$request_uri';
  access_log ${dir}/access.log echo;
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/server.crt;
    ssl_certificate_key ${dir}/server.key;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_client_certificate ${dir}/client-ca.crt;
    ssl_verify_client on;
    ssl_verify_depth 2;
    # Without a certificate: no handshake at all, rather than nginx's own 400 page after one.
    ssl_conf_command VerifyMode Peer,Require;
    location / {
      default_type application/json;
      if ($ssl_client_s_dn != "${options.allowedClientDn}") { return 403 '{"refused":"client DN"}'; }
      return 200 '{"clientDn":"$ssl_client_s_dn","clientSerial":"$ssl_client_serial","verify":"$ssl_client_verify","uri":"$request_uri","interactionId":"$http_x_fapi_interaction_id"}';
    }
    location /accounts/slow/ {
      if ($ssl_client_s_dn != "${options.allowedClientDn}") { return 403 '{"refused":"client DN"}'; }
      proxy_set_header x-client-serial $ssl_client_serial;
      proxy_pass http://127.0.0.1:${options.slowBackendPort};
    }
  }
}
`
}

function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port }, () => {
      socket.destroy()
      resolve(true)
    })
    socket.once('error', () => resolve(false))
  })
}

export async function startMtlsNginx(options: MtlsNginxOptions): Promise<MtlsNginx> {
  const dir = await mkdtemp(join(tmpdir(), 'fapigw-nginx-'))
  const port = await findFreePort()
  await writeFile(join(dir, 'server.crt'), options.certPem)
  await writeFile(join(dir, 'server.key'), options.keyPem, { mode: 0o600 })
  await writeFile(join(dir, 'client-ca.crt'), options.clientCaPem)
  await writeFile(join(dir, 'nginx.conf'), configuration(dir, port, options))
  const nginx = createManagedProcess(dir, [NGINX_BINARY, '-p', dir, '-e', 'stderr', '-c', join(dir, 'nginx.conf')], () =>
    waitUntil(() => accepts(port), 'nginx to listen'),
  )
  await nginx.start()
  return {
    url: `https://127.0.0.1:${port}`,
    accessLog() {
      const file = join(dir, 'access.log')
      if (!existsSync(file)) return []
      return readFileSync(file, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => {
          const [status, verify, clientDn, uri] = line.split('\t')
          return { status: Number(status), verify: verify ?? '', clientDn: clientDn ?? '', uri: uri ?? '' }
        })
    },
    close: nginx.close,
  }
}
