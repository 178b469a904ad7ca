/**
 * Secrets read from SSM at run time (lib/runtime/secrets.ts) through the
 * project's own client (lib/runtime/ssm.ts, no AWS SDK), its requests SigV4-signed
 * and checked, against a local endpoint that speaks SSM's JSON protocol; the
 * values used by a real tick against the test PostgreSQL and a real Pushgateway
 * behind a token-checking front.
 */

import { randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { collect } from '../../functions/collect';
import { metrics } from '../../functions/metrics';
import { clearSecretsCache } from '../../lib/runtime/secrets';
import { startAuthFront, type AuthFront } from '../support/auth-front';
import {
  baseEnv,
  expectKnownQueue,
  expectMarkedFailed,
  expectOk,
  invokeCollect,
  scramVerifier,
  seedKnownQueue,
  sleep,
  startStack,
  waitFor,
  type Invocation,
  type Stack,
} from '../support/faults';
import { captureOutput, lambdaContext, scheduledEvent, withEnv } from '../support/lambda';
import { freePort, listenOnLoopback } from '../../scripts/support/net';
import { adminClient } from '../support/postgres';
import { awsEnv, startFakeSsm, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN, type FakeSsm } from '../../scripts/support/ssm';

const hex = randomBytes(4).toString('hex');
const GATEWAY_TOKEN = `Gw-Token-${hex}-from-ssm`;
const BEARER_TOKEN = `Scrape-Token-${hex}-from-ssm`;
const DB_PARAMETER = `/xyn-metrics/test-${hex}/database-url`;
const TOKEN_PARAMETER = `/xyn-metrics/test-${hex}/pushgateway-token`;

let stack: Stack;
let ssm: FakeSsm;
let front: AuthFront;
/** The reader role's DATABASE_URL; the rotation test changes its password. */
let readerUrl: string;
/** Every secret value any test used, for the "never printed" checks. */
const secretsSeen = new Set<string>([GATEWAY_TOKEN, BEARER_TOKEN, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN]);

beforeAll(async () => {
  stack = await startStack('secrets');
  await seedKnownQueue(stack.db);
  ssm = await startFakeSsm();
  front = await startAuthFront(stack.gateway.url, GATEWAY_TOKEN);
  secretsSeen.add(stack.reader.password);
  readerUrl = stack.reader.url;
});
afterAll(async () => {
  await front?.close();
  await ssm?.close();
  await stack?.close();
});
beforeEach(() => {
  ssm.mode = 'answer';
  ssm.put(DB_PARAMETER, readerUrl);
  ssm.put(TOKEN_PARAMETER, GATEWAY_TOKEN);
  front.token = GATEWAY_TOKEN;
  ssm.requests.length = 0;
  clearSecretsCache();
});

/** The deployed environment: parameter names only, no secret value. */
function deployedEnv(job: string, over: Record<string, string | undefined> = {}): Record<string, string | undefined> {
  return {
    ...baseEnv(stack, job),
    ...awsEnv(ssm.url),
    DATABASE_URL: undefined,
    DATABASE_URL_SSM_PARAMETER: DB_PARAMETER,
    PUSHGATEWAY_URL: front.url,
    PUSHGATEWAY_TOKEN_SSM_PARAMETER: TOKEN_PARAMETER,
    SECRETS_CACHE_SECONDS: undefined,
    ...over,
  };
}

/** No form of any secret in what the invocation printed, threw or returned. */
/** Rotation on the database's side: the reader role gets a new password, and SSM the new DATABASE_URL. */
async function rotateReaderPassword(prefix: string): Promise<void> {
  const newPassword = `${prefix}-${randomBytes(6).toString('hex')}`;
  secretsSeen.add(newPassword);
  const admin = await adminClient();
  try {
    await admin.query(`ALTER ROLE ${stack.reader.name} PASSWORD '${scramVerifier(newPassword, 16)}'`);
  } finally {
    await admin.end();
  }
  const url = new URL(readerUrl);
  url.password = encodeURIComponent(newPassword);
  readerUrl = url.toString();
  ssm.put(DB_PARAMETER, readerUrl);
}

function expectNoSecret(run: { output: string; error?: unknown; result?: unknown }): void {
  const error = run.error as Error | undefined;
  const seen = [run.output, error?.message ?? '', error?.stack ?? '', JSON.stringify(run.result ?? null)].join('\n');
  for (const secret of secretsSeen) {
    for (const form of [secret, encodeURIComponent(secret), Buffer.from(secret).toString('base64')]) {
      expect(seen.includes(form), `a secret appeared in: ${seen}`).toBe(false);
    }
  }
}

function logLines(run: Invocation): { level: string; msg: string; error?: string; [k: string]: unknown }[] {
  return run.output.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
}

/** The invocation failed with one error naming `cause`, logged as one error line, within `budgetMs`. */
function expectSecretsFailure(run: Invocation, cause: RegExp, budgetMs: number): void {
  expect(run.error, `expected a failure, got ${JSON.stringify(run.result)}`).toBeInstanceOf(Error);
  const message = (run.error as Error).message;
  expect(message.split('\n')).toHaveLength(1);
  expect(message).toMatch(/^xyn-metrics secrets unavailable: /);
  expect(message).toMatch(cause);
  expect(run.elapsedMs, `took ${run.elapsedMs} ms`).toBeLessThan(budgetMs);
  const lines = logLines(run);
  expect(lines, run.output).toHaveLength(1);
  expect(lines[0]).toMatchObject({ level: 'error', msg: 'secrets unavailable' });
  expect(lines[0]!.error).toMatch(cause);
  expectNoSecret(run);
}

describe('secrets from SSM at run time (lib/runtime/ssm.ts, SigV4, SSM JSON protocol)', () => {
  it('reads DATABASE_URL and the gateway token in one signed, decrypted GetParameters call, and the tick uses them', async () => {
    const run = await invokeCollect(deployedEnv('xyn_ssm_values'));
    expectOk(run);
    expectKnownQueue(await stack.gateway.scrape(), 'xyn_ssm_values');
    expect(front.refused()).toBe(0);

    expect(ssm.requests).toHaveLength(1);
    const [request] = ssm.requests;
    expect(request).toMatchObject({
      target: 'AmazonSSM.GetParameters',
      contentType: 'application/x-amz-json-1.1',
      signatureProblem: undefined,
      withDecryption: true,
    });
    expect(request!.credentialScope).toMatch(/^\d{8}\/eu-west-1\/ssm\/aws4_request$/);
    // Lambda's credentials are temporary: the session token must travel, signed.
    expect(request!.signedHeaders).toEqual(expect.arrayContaining(['host', 'x-amz-date', 'x-amz-security-token', 'x-amz-target']));
    expect([...request!.names].sort()).toEqual([DB_PARAMETER, TOKEN_PARAMETER].sort());
    expectNoSecret(run);
  });

  it('local use: plain variables, no X_SSM_PARAMETER, never calls SSM', async () => {
    const run = await invokeCollect({
      ...deployedEnv('xyn_ssm_local'),
      DATABASE_URL: readerUrl,
      DATABASE_URL_SSM_PARAMETER: undefined,
      PUSHGATEWAY_TOKEN: GATEWAY_TOKEN,
      PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined,
    });
    expectOk(run);
    expect(ssm.requests).toHaveLength(0);
  });

  it('both X and X_SSM_PARAMETER set is a configuration error naming both, before any call', async () => {
    const run = await invokeCollect(deployedEnv('xyn_ssm_both', { DATABASE_URL: readerUrl }));
    expect((run.error as Error).message).toMatch(/^xyn-metrics configuration error: DATABASE_URL and DATABASE_URL_SSM_PARAMETER are both set/);
    expect(ssm.requests).toHaveLength(0);
    expectNoSecret(run);
  });

  it('a missing parameter is one error naming the parameter and the variable', async () => {
    const missing = `/xyn-metrics/test-${hex}/no-such-parameter`;
    const run = await invokeCollect(deployedEnv('xyn_ssm_missing', { PUSHGATEWAY_TOKEN_SSM_PARAMETER: missing }));
    expectSecretsFailure(run, new RegExp(`SSM parameter ${missing} \\(for PUSHGATEWAY_TOKEN\\) does not exist`), 10_000);
    expect((run.error as Error).message).not.toMatch(/DATABASE_URL\)/);
  });

  it('access denied is one error naming the parameters, the variables and AccessDeniedException', async () => {
    ssm.mode = 'access_denied';
    const run = await invokeCollect(deployedEnv('xyn_ssm_denied'));
    expectSecretsFailure(run, new RegExp(`${DB_PARAMETER} \\(for DATABASE_URL\\).*AccessDeniedException.*not authorized to perform: ssm:GetParameters`), 10_000);
  });

  it('a KMS failure is one error naming the parameters and the reason', async () => {
    ssm.mode = 'kms_failure';
    const run = await invokeCollect(deployedEnv('xyn_ssm_kms'));
    expectSecretsFailure(run, new RegExp(`${TOKEN_PARAMETER} \\(for PUSHGATEWAY_TOKEN\\).*InvalidKeyId.*disabled`), 10_000);
  });

  it('a parameter stored as a plain String is refused: secrets are SecureStrings', async () => {
    ssm.put(TOKEN_PARAMETER, GATEWAY_TOKEN, 'String');
    const run = await invokeCollect(deployedEnv('xyn_ssm_string'));
    expectSecretsFailure(run, new RegExp(`${TOKEN_PARAMETER} \\(for PUSHGATEWAY_TOKEN\\) is a String, not a SecureString`), 10_000);
  });

  it('an endpoint that is down is one error naming the parameters, within the tick deadline', async () => {
    const closed = `http://127.0.0.1:${await freePort()}`;
    const run = await invokeCollect(deployedEnv('xyn_ssm_down', { AWS_ENDPOINT_URL_SSM: closed, TICK_TIMEOUT_MS: '5000' }));
    expectSecretsFailure(run, new RegExp(`cannot read SSM parameters .*${DB_PARAMETER} \\(for DATABASE_URL\\).*ECONNREFUSED`), 5_000);
  });

  it('a slow endpoint is cut at the tick deadline: one error, no tick, the invocation fails in time', async () => {
    ssm.mode = 'hang';
    const run = await invokeCollect(deployedEnv('xyn_ssm_slow', { TICK_TIMEOUT_MS: '1500' }));
    expectSecretsFailure(run, /cannot read SSM parameters .*SSM GetParameters did not finish within \d+ ms \(tick deadline\)/, 1_500 + 1_000);
    expect(run.elapsedMs).toBeGreaterThanOrEqual(1_400);
    // The cut request's socket is closed, not left to a warm container.
    await waitFor('the SSM connection to close', async () => (ssm.openConnections() === 0 ? true : undefined), 2_000);
  });

  it('an SSM outage in a warm container: the cached values serve, with a warning, and the tick pushes (issue 20)', async () => {
    const env = deployedEnv('xyn_ssm_outage_warm', { SECRETS_CACHE_SECONDS: '1' });
    expectOk(await invokeCollect(env));
    await sleep(1_100);
    ssm.mode = 'access_denied';
    const run = await invokeCollect(env);
    expectOk(run);
    expect(ssm.requests).toHaveLength(2);
    const [warning, tick] = logLines(run);
    expect(warning).toMatchObject({ level: 'warn', msg: 'secrets stale: SSM could not be read, cached values used', variables: ['DATABASE_URL', 'PUSHGATEWAY_TOKEN'] });
    expect(warning!.error).toMatch(/AccessDeniedException/);
    expect(tick).toMatchObject({ msg: 'tick', outcome: 'ok' });
    expectKnownQueue(await stack.gateway.scrape(), 'xyn_ssm_outage_warm');
    expectNoSecret(run);
  });

  it('no secret to be had: xyn_collector_up 0 goes to a gateway that needs none of them, replacing the old figures (issue 20)', async () => {
    const env = deployedEnv('xyn_ssm_outage_cold', { PUSHGATEWAY_URL: stack.gateway.url, PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined });
    expectOk(await invokeCollect(env));
    expectKnownQueue(await stack.gateway.scrape(), 'xyn_ssm_outage_cold');
    clearSecretsCache(); // a new container
    ssm.mode = 'access_denied';
    const run = await invokeCollect(env);
    expectSecretsFailure(run, /AccessDeniedException/, 10_000);
    expect(logLines(run)[0]).toMatchObject({ down_pushed_to: [`${stack.gateway.url}/metrics/job/xyn_ssm_outage_cold`] });
    expectMarkedFailed(await stack.gateway.scrape(), 'xyn_ssm_outage_cold');
  });

  it('caches values for SECRETS_CACHE_SECONDS, then reads them again', async () => {
    const env = deployedEnv('xyn_ssm_cache', { SECRETS_CACHE_SECONDS: '2' });
    const first = await invokeCollect(env);
    expectOk(first);
    const firstAt = Date.now();
    expect(ssm.requests).toHaveLength(1);
    expectOk(await invokeCollect(env));
    // Still inside the 2 s (two ticks take well under it on a loaded machine): no second call.
    expect(Date.now() - firstAt).toBeLessThan(2_000);
    expect(ssm.requests).toHaveLength(1);
    await waitFor('the cache time to pass', async () => (Date.now() - firstAt > 2_100 ? true : undefined), 5_000);
    expectOk(await invokeCollect(env));
    expect(ssm.requests).toHaveLength(2);
  });

  it('a rotated database password: the refused login refetches once, and the tick runs again and succeeds', async () => {
    const env = deployedEnv('xyn_ssm_rotate_db', { SECRETS_CACHE_SECONDS: '300' });
    expectOk(await invokeCollect(env));
    expect(ssm.requests).toHaveLength(1);

    await rotateReaderPassword('rotated');

    const run = await invokeCollect(env);
    expectOk(run);
    expect(ssm.requests).toHaveLength(2);
    const lines = logLines(run);
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['error', 'tick failed'],
      ['warn', 'credentials refused; secrets changed in SSM, tick runs again'],
      ['info', 'tick'],
    ]);
    expect(lines[0]!.error).toMatch(/password authentication failed/);
    expect(lines[1]).toMatchObject({ refused: ['database'], changed: ['DATABASE_URL'] });
    expectKnownQueue(await stack.gateway.scrape(), 'xyn_ssm_rotate_db');
    expectNoSecret(run);

    // The new value is cached now: the next tick reads nothing.
    expectOk(await invokeCollect(env));
    expect(ssm.requests).toHaveLength(2);
  });

  it('a rotated gateway token: the 401 refetches once, and the tick runs again and succeeds', async () => {
    const env = deployedEnv('xyn_ssm_rotate_gw', { SECRETS_CACHE_SECONDS: '300' });
    expectOk(await invokeCollect(env));
    const newToken = `Gw-Rotated-${randomBytes(6).toString('hex')}`;
    secretsSeen.add(newToken);
    front.token = newToken;
    ssm.put(TOKEN_PARAMETER, newToken);

    const run = await invokeCollect(env);
    expectOk(run);
    expect(ssm.requests).toHaveLength(2);
    expect(logLines(run)[1]).toMatchObject({ level: 'warn', refused: ['pushgateway'], changed: ['PUSHGATEWAY_TOKEN'] });
    expectNoSecret(run);
  });

  it('a refused credential that SSM did not change: one refetch, no second tick, the invocation fails', async () => {
    const env = deployedEnv('xyn_ssm_refused', { SECRETS_CACHE_SECONDS: '300' });
    expectOk(await invokeCollect(env));
    front.token = `Gw-Other-${randomBytes(6).toString('hex')}`;
    secretsSeen.add(front.token);
    const refusedBefore = front.refused();

    const run = await invokeCollect(env);
    expect((run.error as Error).message).toMatch(/push to .* failed after 1 attempt: HTTP 401/);
    expect(ssm.requests).toHaveLength(2);
    expect(front.refused() - refusedBefore).toBe(1);
    expect(logLines(run).map((l) => [l.level, l.msg])).toEqual([
      ['error', 'tick failed'],
      ['warn', 'credentials refused; secrets unchanged in SSM'],
    ]);
    expectNoSecret(run);
  });

  describe('a refused credential after samples that outlived the tick deadline (issue 19)', () => {
    // Two samples in a 2 s period with a 1 s TICK_TIMEOUT_MS: the second sample starts after the
    // deadline the setup had. The refetch gets a deadline of its own, from what the invocation has left.
    const sampled = (job: string) =>
      deployedEnv(job, { SECRETS_CACHE_SECONDS: '300', SAMPLES_PER_INVOCATION: '2', SCHEDULE_PERIOD_SECONDS: '2', TICK_TIMEOUT_MS: '1000' });
    /** An event whose time is now to the millisecond, so both slots of the period are whole. */
    const invokeNow = (env: Record<string, string | undefined>) =>
      withEnv(env, async () => {
        const started = Date.now();
        const run = await captureOutput(() => collect({ ...scheduledEvent(), time: new Date().toISOString() }, lambdaContext(10_000)));
        return { ...run, elapsedMs: Date.now() - started };
      });

    it('reads SSM again and reports the refused credential (not an expired deadline)', async () => {
      const env = sampled('xyn_ssm_refused_sampled');
      expect((await invokeNow(env)).error).toBeUndefined();
      front.token = `Gw-Other-${randomBytes(6).toString('hex')}`;
      secretsSeen.add(front.token);
      const run = await invokeNow(env);
      expect((run.error as Error).message).toMatch(/^xyn-metrics: 2 of 2 samples failed; first: push to .* failed after 1 attempt: HTTP 401/);
      expect((run.error as Error).cause).toBeUndefined();
      expect(ssm.requests).toHaveLength(2);
      expect(logLines(run).map((l) => [l.level, l.msg])).toEqual([
        ['error', 'tick failed'],
        ['error', 'tick failed'],
        ['warn', 'samples'],
        ['warn', 'credentials refused; secrets unchanged in SSM'],
      ]);
      expectNoSecret(run);
    });

    it('when the refetch fails, the refused credential stays the error and the refetch error is its cause', async () => {
      const env = sampled('xyn_ssm_refused_sampled_down');
      expect((await invokeNow(env)).error).toBeUndefined();
      front.token = `Gw-Other-${randomBytes(6).toString('hex')}`;
      secretsSeen.add(front.token);
      ssm.mode = 'access_denied';
      const run = await invokeNow(env);
      const error = run.error as Error & { cause?: Error & { what?: string } };
      expect(error.message).toMatch(/^xyn-metrics: 2 of 2 samples failed; first: push to .* failed after 1 attempt: HTTP 401/);
      expect(error.cause?.message).toMatch(/^xyn-metrics secrets unavailable: cannot read SSM parameters .*AccessDeniedException/);
      expect(error.cause?.what).toBe('secrets unavailable');
      expect(logLines(run).map((l) => [l.level, l.msg]).at(-1)).toEqual(['error', 'secrets unavailable']);
      expectNoSecret(run);
    });
  });

  it('a bad TICK_TIMEOUT_MS is a configuration error naming it, before any SSM call (issue 25)', async () => {
    const run = await invokeCollect(deployedEnv('xyn_ssm_budget', { TICK_TIMEOUT_MS: '0' }));
    expect((run.error as Error).message).toBe('xyn-metrics configuration error: TICK_TIMEOUT_MS must be between 100 and 900000, got 0');
    expect(ssm.requests).toHaveLength(0);
    const scrape = await withEnv({ ...deployedEnv('xyn_ssm_budget'), TICK_TIMEOUT_MS: 'soon', METRICS_BEARER_TOKEN_SSM_PARAMETER: DB_PARAMETER }, () =>
      captureOutput(() => metrics({ rawPath: '/metrics', headers: {} }, lambdaContext(10_000))),
    );
    expect(scrape.result?.statusCode).toBe(500);
    expect(scrape.output).toContain('TICK_TIMEOUT_MS must be a whole number, got \\"soon\\"');
    expect(ssm.requests).toHaveLength(0);
  });

  it('the AWS credentials the function holds are redacted from what a failure says, even when a peer echoes them (issue 25)', async () => {
    // A remote-write receiver (a misbehaving proxy) that puts the request's session token, and the secret key, into its 400 answer.
    const echo = createServer((req, res) => {
      req.resume();
      res.writeHead(400, { 'content-type': 'text/plain' }).end(`rejected: ${req.headers['x-amz-security-token']} ${TEST_SECRET_ACCESS_KEY}`);
    });
    const listener = await listenOnLoopback(echo);
    try {
      const env = deployedEnv('xyn_ssm_awscreds', {
        PUSHGATEWAY_URL: undefined,
        PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined,
        REMOTE_WRITE_URL: `http://127.0.0.1:${listener.port}/api/v1/push`,
        REMOTE_WRITE_SIGV4: 'true',
      });
      const run = await invokeCollect(env);
      expect((run.error as Error).message).toMatch(/remote write to .* failed after 1 attempt: HTTP 400: rejected: \*\*\* \*\*\*/);
      expect(run.output).toContain('HTTP 400: rejected: *** ***');
      expectNoSecret(run);
    } finally {
      await listener.close();
    }
  });

  it('a failure that is not a refused credential (database down) fails the tick without reading SSM again', async () => {
    const closed = `127.0.0.1:${await freePort()}/v1`;
    const run = await invokeCollect(deployedEnv('xyn_ssm_dbdown', { DATABASE_WS_PROXY: closed, SECRETS_CACHE_SECONDS: '300' }));
    expect((run.error as Error).message).toMatch(/^xyn-metrics tick failed: database 127\.0\.0\.1: /);
    expect(ssm.requests).toHaveLength(1);
    expect(logLines(run).map((l) => [l.level, l.msg])).toEqual([['error', 'tick failed']]);
    expectNoSecret(run);
  });

  it('the /metrics function: a rotated database password is refetched once and the scrape answers with the figures', async () => {
    const scrapeParameter = `/xyn-metrics/test-${hex}/metrics-bearer-token`;
    ssm.put(scrapeParameter, BEARER_TOKEN);
    const env = {
      ...deployedEnv('xyn_ssm_scrape_rotate', { PUSHGATEWAY_URL: undefined, PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined, SECRETS_CACHE_SECONDS: '300' }),
      METRICS_BEARER_TOKEN_SSM_PARAMETER: scrapeParameter,
    };
    const scrape = () =>
      withEnv(env, () => captureOutput(() => metrics({ rawPath: '/metrics', headers: { authorization: `Bearer ${BEARER_TOKEN}` } }, lambdaContext(10_000))));
    expect((await scrape()).result?.body).toMatch(/^xyn_collector_up 1$/m);

    await rotateReaderPassword('rotated-scrape');

    const rotated = await scrape();
    expect(rotated.result?.statusCode).toBe(200);
    expect(rotated.result?.body, rotated.output).toMatch(/^xyn_collector_up 1$/m);
    // The first scrape read the token, then (authorised) the database URL; the refusal read both again at once.
    expect(ssm.requests.map((r) => r.names)).toEqual([[scrapeParameter], [DB_PARAMETER], [DB_PARAMETER, scrapeParameter]]);
    const lines = rotated.output.trim().split('\n').map((l) => JSON.parse(l));
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['warn', 'password refused; secrets changed in SSM, reading again'],
      ['info', 'scrape'],
    ]);
    expectNoSecret(rotated);
  });

  it('the /metrics function: anonymous requests read the token alone, kept 60 s whatever SECRETS_CACHE_SECONDS says (issue 25)', async () => {
    const scrapeParameter = `/xyn-metrics/test-${hex}/metrics-bearer-token`;
    ssm.put(scrapeParameter, BEARER_TOKEN);
    const env = {
      ...deployedEnv('xyn_ssm_scrape_anon', { PUSHGATEWAY_URL: undefined, PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined, SECRETS_CACHE_SECONDS: '0' }),
      METRICS_BEARER_TOKEN_SSM_PARAMETER: scrapeParameter,
    };
    const scrape = (token: string | undefined) =>
      withEnv(env, () =>
        captureOutput(() => metrics({ rawPath: '/metrics', headers: token ? { authorization: `Bearer ${token}` } : {} }, lambdaContext(10_000))),
      );
    for (const token of [undefined, 'wrong-token-wrong-token', undefined, 'another-wrong-one-here', undefined]) {
      expect((await scrape(token)).result?.statusCode).toBe(401);
    }
    expect(ssm.requests.map((r) => r.names)).toEqual([[scrapeParameter]]);
    // An authorised request reads the database URL, every time with SECRETS_CACHE_SECONDS=0; the token stays cached.
    expect((await scrape(BEARER_TOKEN)).result?.statusCode).toBe(200);
    expect((await scrape(BEARER_TOKEN)).result?.statusCode).toBe(200);
    expect(ssm.requests.map((r) => r.names)).toEqual([[scrapeParameter], [DB_PARAMETER], [DB_PARAMETER]]);
  });

  it('the /metrics function reads DATABASE_URL and METRICS_BEARER_TOKEN from SSM', async () => {
    const scrapeParameter = `/xyn-metrics/test-${hex}/metrics-bearer-token`;
    ssm.put(scrapeParameter, BEARER_TOKEN);
    const env = {
      ...deployedEnv('xyn_ssm_scrape', { PUSHGATEWAY_URL: undefined, PUSHGATEWAY_TOKEN_SSM_PARAMETER: undefined }),
      METRICS_BEARER_TOKEN: undefined,
      METRICS_BEARER_TOKEN_SSM_PARAMETER: scrapeParameter,
    };
    const scrape = (token: string) =>
      withEnv(env, () => captureOutput(() => metrics({ rawPath: '/metrics', headers: { authorization: `Bearer ${token}` } }, lambdaContext(10_000))));
    const ok = await scrape(BEARER_TOKEN);
    expect(ok.result?.statusCode, ok.output).toBe(200);
    expect(ok.result?.body).toMatch(/^xyn_collector_up 1$/m);
    const refused = await scrape('not-the-token-at-all-xyz');
    expect(refused.result?.statusCode).toBe(401);
    // The token first, then the database URL for the authorised request; nothing for the refused one (issue 25).
    expect(ssm.requests.map((r) => r.names)).toEqual([[scrapeParameter], [DB_PARAMETER]]);
    expectNoSecret(ok);
    expectNoSecret(refused);
  });
});
