import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../lib/config/parse';
import { driverSettings, driverUrl, tlsAttempts, tlsOptions, transportFor, withoutSslParameters } from '../../lib/source/connection';

const config = (env: Record<string, string>) => parseConfig({ PUSHGATEWAY_URL: 'https://gw.example', ...env }).database;

describe('transportFor', () => {
  it('takes the Neon driver for Neon hosts and configured proxies, TCP for every other host', () => {
    expect(transportFor(config({ DATABASE_URL: 'postgresql://u@ep-x-1.eu-central-1.aws.neon.tech/db' }))).toBe('neon-websocket');
    expect(transportFor(config({ DATABASE_URL: 'postgresql://u@127.0.0.1/db', DATABASE_WS_PROXY: '127.0.0.1:8089' }))).toBe('neon-websocket');
    expect(transportFor(config({ DATABASE_URL: 'postgresql://u@db.rds.amazonaws.com/db', DATABASE_WS_PROXY: 'wss://proxy.example' }))).toBe('neon-websocket');
    expect(transportFor(config({ DATABASE_URL: 'postgresql://u@db.rds.amazonaws.com/db' }))).toBe('tcp');
    expect(transportFor(config({ DATABASE_URL: 'postgresql://u@127.0.0.1/db' }))).toBe('tcp');
  });
});

describe('tlsOptions and tlsAttempts', () => {
  it('verifies the certificate and host name for verify-full, the chain only for verify-ca', () => {
    expect(tlsOptions({ mode: 'verify-full', ca: 'PEM' })).toEqual({ ca: 'PEM', rejectUnauthorized: true });
    const ca = tlsOptions({ mode: 'verify-ca', ca: 'PEM' }) as { checkServerIdentity: () => unknown; rejectUnauthorized: boolean };
    expect(ca.rejectUnauthorized).toBe(true);
    expect(ca.checkServerIdentity()).toBeUndefined();
  });

  it('encrypts without verifying for require, and never sends TLS for disable', () => {
    expect(tlsOptions({ mode: 'require', ca: undefined })).toEqual({ rejectUnauthorized: false });
    expect(tlsOptions({ mode: 'disable', ca: undefined })).toBe(false);
  });

  it('tries TLS then plain text for prefer, the other way round for allow, once otherwise', () => {
    expect(tlsAttempts({ mode: 'prefer', ca: undefined })).toEqual([{ rejectUnauthorized: false }, false]);
    expect(tlsAttempts({ mode: 'allow', ca: undefined })).toEqual([false, { rejectUnauthorized: false }]);
    expect(tlsAttempts({ mode: 'verify-full', ca: undefined })).toHaveLength(1);
    expect(tlsAttempts({ mode: 'require', ca: undefined })).toHaveLength(1);
  });
});

describe('driverSettings', () => {
  it('a wss:// proxy keeps the WebSocket secure', () => {
    const settings = driverSettings({ wsProxy: 'wss://proxy.example:8443' });
    expect(settings).toMatchObject({ useSecureWebSocket: true, forceDisablePgSSL: true });
    expect((settings.wsProxy as (h: string, p: number) => string)('db', 5432)).toBe('proxy.example:8443/v1?address=db%3A5432');
  });
});

describe('withoutSslParameters', () => {
  it('drops libpq ssl parameters node-postgres would read its own way, keeps the rest', () => {
    expect(withoutSslParameters('postgresql://u:p@h:5432/db?sslmode=require&sslrootcert=/ca.pem&application_name=x')).toBe(
      'postgresql://u:p@h:5432/db?application_name=x',
    );
    // channel_binding is a client option here (enableChannelBinding and the require checks), not a URL parameter.
    expect(withoutSslParameters('postgresql://u:p@h/db?channel_binding=require&sslmode=verify-full')).toBe('postgresql://u:p@h/db');
  });

  it('writes an IAM token in as the password, percent-encoded, so node-postgres sends exactly the token', async () => {
    const token = 'db.example:5432/?Action=connect&DBUser=u&X-Amz-Credential=AKID%2F20240506%2Feu-west-1%2Frds-db%2Faws4_request&X-Amz-Signature=ab';
    const url = driverUrl('postgresql://u@db.example:5432/xyn?sslmode=verify-full', token);
    const { parse } = await import('pg-connection-string');
    expect(parse(url)).toMatchObject({ user: 'u', password: token, host: 'db.example', port: '5432', database: 'xyn' });
    expect(driverUrl('postgresql://u:p@h/db')).toBe('postgresql://u:p@h/db');
  });
});
