/**
 * Fronts that speak just enough of PostgreSQL's wire protocol to stand where
 * a network attacker or a managed database's own front door stands:
 * - startTlsInterceptor: a man in the middle holding a certificate the client
 *   trusts (its own, for the right name): it ends the client's TLS, opens its
 *   own TLS to the real server and relays, reading everything. Channel
 *   binding is what defeats it.
 * - startRdsIamFront: RDS's IAM authentication, checked as RDS checks it (see
 *   verifyRdsToken), in front of a real PostgreSQL.
 * Both take the SSLRequest themselves and end TLS with a test certificate.
 */

import { createHash, createHmac } from 'node:crypto';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import tls from 'node:tls';
import type { Certificate } from './tls';

const SSL_REQUEST = 80877103;
const GSSENC_REQUEST = 80877104;

/** Buffered reads of exact sizes from a socket, until release() hands the rest over. */
class Reader {
  private buffer = Buffer.alloc(0);
  private wake: (() => void) | undefined;
  private closed = false;
  private readonly onData = (chunk: Buffer) => {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    this.wake?.();
  };
  private readonly onClose = () => {
    this.closed = true;
    this.wake?.();
  };

  constructor(private readonly socket: Duplex) {
    socket.on('data', this.onData);
    socket.on('close', this.onClose);
    socket.on('end', this.onClose);
  }

  async read(n: number): Promise<Buffer> {
    while (this.buffer.length < n) {
      if (this.closed) throw new Error('peer closed the connection');
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
    const out = this.buffer.subarray(0, n);
    this.buffer = this.buffer.subarray(n);
    return out;
  }

  /** A backend (or typed frontend) message: its type, and the whole message as sent. */
  async message(): Promise<{ type: string; body: Buffer; raw: Buffer }> {
    const head = await this.read(5);
    const body = await this.read(head.readInt32BE(1) - 4);
    return { type: String.fromCharCode(head[0]!), body, raw: Buffer.concat([head, body]) };
  }

  /** Stop reading; what was read ahead belongs to whoever reads next. */
  release(): Buffer {
    this.socket.off('data', this.onData);
    this.socket.off('close', this.onClose);
    this.socket.off('end', this.onClose);
    return this.buffer;
  }
}

function int32(value: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(value);
  return b;
}

function typed(type: string, body: Buffer): Buffer {
  return Buffer.concat([Buffer.from(type), int32(body.length + 4), body]);
}

/** An ErrorResponse as the server sends it (FATAL, a SQLSTATE, a message). */
export function errorResponse(code: string, message: string): Buffer {
  const field = (t: string, v: string) => Buffer.concat([Buffer.from(t), Buffer.from(v, 'utf8'), Buffer.from([0])]);
  return typed('E', Buffer.concat([field('S', 'FATAL'), field('V', 'FATAL'), field('C', code), field('M', message), Buffer.from([0])]));
}

const AUTH_CLEARTEXT = typed('R', int32(3));

function passwordMessage(password: string): Buffer {
  return typed('p', Buffer.concat([Buffer.from(password, 'utf8'), Buffer.from([0])]));
}

/** The first message of a connection: an SSLRequest (or GSSENCRequest, answered N), then the StartupMessage. */
async function readRequest(reader: Reader): Promise<{ ssl: true } | { ssl: false; startup: Buffer; parameters: Record<string, string> }> {
  const length = (await reader.read(4)).readInt32BE(0);
  const body = await reader.read(length - 4);
  const code = body.readInt32BE(0);
  if (code === SSL_REQUEST) return { ssl: true };
  if (code === GSSENC_REQUEST) throw new Error('GSSENCRequest is not spoken here');
  const parameters: Record<string, string> = {};
  const pairs = body.subarray(4).toString('utf8').split('\0');
  for (let i = 0; i + 1 < pairs.length && pairs[i] !== ''; i += 2) parameters[pairs[i]!] = pairs[i + 1]!;
  return { ssl: false, startup: Buffer.concat([int32(length), body]), parameters };
}

/** Answer an SSLRequest with S and end TLS with `certificate`. */
function acceptTls(socket: net.Socket, certificate: Certificate): Promise<tls.TLSSocket> {
  socket.write('S');
  const secure = new tls.TLSSocket(socket, { isServer: true, cert: certificate.cert, key: certificate.key });
  return new Promise((resolve, reject) => {
    secure.once('secure', () => resolve(secure));
    secure.once('error', reject);
  });
}

/** Relay both ways from here on; whatever the readers had read ahead goes first. */
function relay(a: Duplex, aReader: Reader, b: Duplex, bReader: Reader | undefined, onAtoB?: (chunk: Buffer) => void): void {
  const aRest = aReader.release();
  const bRest = bReader?.release() ?? Buffer.alloc(0);
  if (aRest.length > 0) {
    onAtoB?.(aRest);
    b.write(aRest);
  }
  if (bRest.length > 0) a.write(bRest);
  a.on('data', (chunk: Buffer) => {
    onAtoB?.(chunk);
    b.write(chunk);
  });
  b.pipe(a);
  const end = () => {
    a.destroy();
    b.destroy();
  };
  a.on('close', end).on('error', end);
  b.on('close', end).on('error', end);
}

function connectTcp(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host: '127.0.0.1', port }, () => resolve(socket));
    socket.once('error', reject);
  });
}

export interface Front {
  port: number;
  close(): Promise<void>;
}

async function listen(handle: (socket: net.Socket) => Promise<void>): Promise<Front & { sockets: Set<net.Socket> }> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    handle(socket).catch(() => socket.destroy());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    sockets,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

// ---------------------------------------------------------------- the man in the middle

export interface TlsInterceptor extends Front {
  /** Everything the clients sent, decrypted: what the man in the middle reads. */
  clientBytes(): Buffer;
}

/**
 * Ends the client's TLS with `certificate` (which the client is told to trust),
 * opens its own TLS session to the server on `upstreamPort` (checking nothing)
 * and relays the decrypted bytes both ways.
 */
export async function startTlsInterceptor(certificate: Certificate, upstreamPort: number): Promise<TlsInterceptor> {
  const seen: Buffer[] = [];
  const front = await listen(async (socket) => {
    const reader = new Reader(socket);
    const request = await readRequest(reader);
    if (!request.ssl) throw new Error('the interceptor only takes TLS sessions');
    reader.release();
    const client = await acceptTls(socket, certificate);
    const clientReader = new Reader(client);
    const raw = await connectTcp(upstreamPort);
    raw.write(Buffer.concat([int32(8), int32(SSL_REQUEST)]));
    const rawReader = new Reader(raw);
    if ((await rawReader.read(1)).toString() !== 'S') throw new Error('the server refused TLS');
    rawReader.release();
    const upstream = tls.connect({ socket: raw, rejectUnauthorized: false });
    await new Promise<void>((resolve, reject) => upstream.once('secureConnect', resolve).once('error', reject));
    relay(client, clientReader, upstream, undefined, (chunk) => seen.push(chunk));
  });
  return { port: front.port, close: front.close, clientBytes: () => Buffer.concat(seen) };
}

// ---------------------------------------------------------------- RDS IAM authentication

export interface IamCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
}

export interface TokenCheck {
  /** host:port the token must name: the endpoint the client connected to. */
  endpoint: string;
  region: string;
  /** The user of the StartupMessage: the token must be for that user. */
  user: string;
  credentials: IamCredentials;
  now: Date;
}

const sha256 = (data: string) => createHash('sha256').update(data, 'utf8').digest('hex');
const hmac = (key: string | Buffer, data: string) => createHmac('sha256', key).update(data, 'utf8').digest();
/** SigV4's URI encoding: every byte but A-Z a-z 0-9 - _ . ~ percent-encoded. */
const uriEncode = (s: string) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);

/**
 * Why RDS would refuse `token` as an IAM authentication token, or undefined
 * when it would take it. What is checked, as AWS documents presigned SigV4
 * requests and the RDS Signer makes them: the scheme-less URL
 * <endpoint>/?Action=connect&DBUser=<user>&X-Amz-…; the credential scope
 * <date>/<region>/rds-db/aws4_request of a known access key (and its session
 * token); only `host` signed; X-Amz-Expires at most 900 s and not run out,
 * X-Amz-Date not in the future beyond 5 minutes' clock skew; the signature
 * recomputed with the secret key over GET, "/", the sorted canonical query
 * (the signature left out), host:<endpoint> and the empty payload's hash.
 */
export function verifyRdsToken(token: string, check: TokenCheck): string | undefined {
  if (/^[a-z]+:\/\//i.test(token)) return 'the token must not carry a scheme';
  let url: URL;
  try {
    url = new URL(`https://${token}`);
  } catch {
    return 'the token is not a URL without its scheme';
  }
  if (url.host !== check.endpoint) return `the token is for ${url.host}, not ${check.endpoint}`;
  if (url.pathname !== '/') return `the token's path is ${url.pathname}, not /`;
  const q = url.searchParams;
  if (q.get('Action') !== 'connect') return 'Action is not connect';
  if (q.get('DBUser') !== check.user) return `the token is for user ${q.get('DBUser')}, not ${check.user}`;
  if (q.get('X-Amz-Algorithm') !== 'AWS4-HMAC-SHA256') return 'X-Amz-Algorithm is not AWS4-HMAC-SHA256';
  const credential = /^([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request$/.exec(q.get('X-Amz-Credential') ?? '');
  if (!credential) return 'X-Amz-Credential is not <key>/<date>/<region>/<service>/aws4_request';
  const [, keyId, day, region, service] = credential as unknown as string[];
  if (keyId !== check.credentials.accessKeyId) return `unknown access key ${keyId}`;
  if (service !== 'rds-db') return `signed for service ${service}, not rds-db`;
  if (region !== check.region) return `signed for region ${region}, not ${check.region}`;
  if (check.credentials.sessionToken !== undefined && q.get('X-Amz-Security-Token') !== check.credentials.sessionToken) return 'X-Amz-Security-Token is not the session\'s';
  if (q.get('X-Amz-SignedHeaders') !== 'host') return `signed headers ${q.get('X-Amz-SignedHeaders')}, not host`;
  const date = q.get('X-Amz-Date') ?? '';
  const at = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
  if (!at || !date.startsWith(day!)) return 'X-Amz-Date missing or not the credential\'s date';
  const signedAt = Date.UTC(Number(at[1]), Number(at[2]) - 1, Number(at[3]), Number(at[4]), Number(at[5]), Number(at[6]));
  const expires = Number(q.get('X-Amz-Expires'));
  if (!Number.isInteger(expires) || expires < 1 || expires > 900) return `X-Amz-Expires ${q.get('X-Amz-Expires')} is not 1 to 900 seconds`;
  if (signedAt > check.now.getTime() + 5 * 60_000) return 'X-Amz-Date is in the future';
  if (check.now.getTime() > signedAt + expires * 1000) return 'the token has expired';
  const signature = q.get('X-Amz-Signature') ?? '';
  const canonicalQuery = [...q.entries()]
    .filter(([k]) => k !== 'X-Amz-Signature')
    .map(([k, v]) => [uriEncode(k), uriEncode(v)] as const)
    .sort(([a, x], [b, y]) => (a < b ? -1 : a > b ? 1 : x < y ? -1 : x > y ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const canonicalRequest = ['GET', '/', canonicalQuery, `host:${check.endpoint}\n`, 'host', sha256('')].join('\n');
  const stringToSign = ['AWS4-HMAC-SHA256', date, `${day}/${region}/${service}/aws4_request`, sha256(canonicalRequest)].join('\n');
  const key = hmac(hmac(hmac(hmac(`AWS4${check.credentials.secretAccessKey}`, day!), region!), service!), 'aws4_request');
  const expected = createHmac('sha256', key).update(stringToSign, 'utf8').digest('hex');
  return expected === signature ? undefined : 'the signature does not match';
}

export interface IamLogin {
  user: string | undefined;
  /** Whether the session was TLS when the token came. */
  tls: boolean;
  token: string;
  /** Why it was refused; undefined: accepted. */
  refused: string | undefined;
}

export interface RdsIamFront extends Front {
  logins: IamLogin[];
  /** A broken server that repeats the password it was given in its error message (redaction must catch it). */
  echoTokenInErrors: boolean;
}

export interface RdsIamFrontOptions {
  certificate: Certificate;
  region: string;
  credentials: IamCredentials;
  /** The real PostgreSQL, which asks the front for `passwords[user]` in clear (pg_hba `password`). */
  upstreamPort: number;
  passwords: Record<string, string>;
}

/**
 * RDS's front door for IAM authentication: TLS only (as rds.force_ssl=1),
 * then AuthenticationCleartextPassword, the token checked by verifyRdsToken
 * against the endpoint the client asked for (localhost:<port>); refused with
 * RDS's words (28000, "PAM authentication failed for user"); accepted, a
 * session of its own to the real server as the same user with that user's
 * real password, relayed byte for byte from AuthenticationOk on.
 */
export async function startRdsIamFront(options: RdsIamFrontOptions): Promise<RdsIamFront> {
  const logins: IamLogin[] = [];
  const state = { echoTokenInErrors: false };
  let port = 0;
  const front = await listen(async (socket) => {
    const reader = new Reader(socket);
    const request = await readRequest(reader);
    if (!request.ssl) {
      logins.push({ user: request.parameters.user, tls: false, token: '', refused: 'not TLS' });
      socket.end(errorResponse('28000', 'no pg_hba.conf entry for host "127.0.0.1", SSL off'));
      return;
    }
    reader.release();
    const client = await acceptTls(socket, options.certificate);
    const clientReader = new Reader(client);
    const startup = await readRequest(clientReader);
    if (startup.ssl) throw new Error('a second SSLRequest');
    const user = startup.parameters.user;
    client.write(AUTH_CLEARTEXT);
    const reply = await clientReader.message();
    if (reply.type !== 'p') throw new Error(`expected a password message, got ${reply.type}`);
    const token = reply.body.subarray(0, reply.body.length - 1).toString('utf8');
    const refused =
      user === undefined ? 'no user' : verifyRdsToken(token, { endpoint: `localhost:${port}`, region: options.region, user, credentials: options.credentials, now: new Date() });
    logins.push({ user, tls: true, token, refused });
    if (refused !== undefined || user === undefined || options.passwords[user] === undefined) {
      const echo = state.echoTokenInErrors ? ` (password "${token}")` : '';
      client.end(errorResponse('28000', `PAM authentication failed for user "${user ?? ''}"${echo}`));
      return;
    }
    const upstream = await connectTcp(options.upstreamPort);
    upstream.write(startup.startup);
    const upstreamReader = new Reader(upstream);
    const first = await upstreamReader.message();
    if (first.type === 'R' && first.body.readInt32BE(0) === 3) upstream.write(passwordMessage(options.passwords[user]!));
    else client.write(first.raw);
    relay(client, clientReader, upstream, upstreamReader);
  });
  port = front.port;
  return {
    port: front.port,
    close: front.close,
    logins,
    get echoTokenInErrors() {
      return state.echoTokenInErrors;
    },
    set echoTokenInErrors(value: boolean) {
      state.echoTokenInErrors = value;
    },
  };
}
