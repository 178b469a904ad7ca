/**
 * The local WebSocket-to-TCP bridge is no open proxy: loopback only, its
 * allow-list, and no requests from a web page (which always carry Origin).
 */

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { bridgeTarget, startBridge, type Bridge } from '../../scripts/bridge/bridge';
import { ADMIN_URL } from '../support/postgres';

let bridge: Bridge;
beforeAll(async () => {
  bridge = await startBridge({ allow: [bridgeTarget(ADMIN_URL)] });
});
afterAll(async () => {
  await bridge?.close();
});

type Outcome = { opened: true } | { status: number } | { closed: number };

/** Open a WebSocket to the bridge for `address`; how the bridge answered, within 5 s. */
function attempt(address: string, headers: Record<string, string> = {}): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(`ws://${bridge.proxy}?address=${encodeURIComponent(address)}`, { headers });
    const timer = setTimeout(() => reject(new Error('no answer from the bridge in 5 s')), 5_000);
    const done = (outcome: Outcome) => {
      clearTimeout(timer);
      socket.terminate();
      resolve(outcome);
    };
    socket.on('unexpected-response', (_req, res) => done({ status: res.statusCode ?? 0 }));
    socket.on('close', (code) => done({ closed: code }));
    // An allowed target: the bridge keeps the socket open, relaying; a refused one is closed at once.
    socket.on('open', () => setTimeout(() => socket.readyState === socket.OPEN && done({ opened: true }), 300));
    socket.on('error', () => {});
  });
}

describe('the bridge', () => {
  it('relays to an allowed address for a client without Origin (the driver)', async () => {
    expect(await attempt(bridgeTarget(ADMIN_URL))).toEqual({ opened: true });
  });

  it('refuses a request carrying an Origin header (a web page) with 403', async () => {
    expect(await attempt(bridgeTarget(ADMIN_URL), { Origin: 'https://evil.example' })).toEqual({ status: 403 });
    expect(await attempt(bridgeTarget(ADMIN_URL), { Origin: 'null' })).toEqual({ status: 403 });
  });

  it('keeps its allow-list', async () => {
    expect(await attempt('127.0.0.1:1')).toEqual({ closed: 1008 });
  });

  it('relays to loopback only: a remote address is refused, even with no allow-list, and cannot be allowed', async () => {
    const open = await startBridge();
    try {
      const socket = new WebSocket(`ws://${open.proxy}?address=${encodeURIComponent('192.0.2.10:5432')}`);
      const code = await new Promise<number>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no answer from the bridge in 5 s')), 5_000);
        socket.on('close', (c) => (clearTimeout(timer), resolve(c)));
        socket.on('error', () => {});
      });
      expect(code).toBe(1008);
    } finally {
      await open.close();
    }
    await expect(startBridge({ allow: ['db.example.com:5432'] })).rejects.toThrow(/loopback databases only, not db\.example\.com:5432/);
  });

  it('listens on loopback only', async () => {
    await expect(startBridge({ host: '0.0.0.0' })).rejects.toThrow(/loopback only, not 0\.0\.0\.0/);
  });
});
