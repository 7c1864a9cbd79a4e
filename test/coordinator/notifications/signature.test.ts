import { describe, expect, it } from 'vitest';
import { createHmac } from 'node:crypto';
import { SIGNATURE_HEADER, TIMESTAMP_HEADER, signNotification, verifyNotification } from '../../../coordinator/notifications/signature.ts';

const SECRET = 'whsec-unit';
const BODY = '{"specversion":"1.0","id":"x"}';

describe('notification signatures', () => {
  it('is HMAC-SHA256 over "<timestamp>.<raw body>", hex, with the timestamp in its own header', () => {
    const at = new Date('2026-11-29T12:00:00Z');
    const headers = signNotification(SECRET, BODY, at);
    expect(headers[TIMESTAMP_HEADER]).toBe(String(at.getTime() / 1000));
    const expected = createHmac('sha256', SECRET).update(`${at.getTime() / 1000}.${BODY}`).digest('hex');
    expect(headers[SIGNATURE_HEADER]).toBe(`sha256=${expected}`);
  });

  it('verifies its own signature, and refuses another body, secret, timestamp or an old one (replay)', () => {
    const at = new Date();
    const h = signNotification(SECRET, BODY, at);
    const sig = { signature: h[SIGNATURE_HEADER], timestamp: h[TIMESTAMP_HEADER] };
    expect(verifyNotification(SECRET, BODY, sig)).toBe(true);
    expect(verifyNotification(SECRET, Buffer.from(BODY), sig)).toBe(true);
    expect(verifyNotification(SECRET, `${BODY} `, sig)).toBe(false);
    expect(verifyNotification('other', BODY, sig)).toBe(false);
    expect(verifyNotification(SECRET, BODY, { ...sig, timestamp: String(Number(sig.timestamp) + 1) })).toBe(false);
    expect(verifyNotification(SECRET, BODY, sig, { now: new Date(at.getTime() + 301_000) })).toBe(false);
    expect(verifyNotification(SECRET, BODY, sig, { now: new Date(at.getTime() + 299_000) })).toBe(true);
    expect(verifyNotification(SECRET, BODY, { signature: undefined, timestamp: sig.timestamp })).toBe(false);
    expect(verifyNotification(SECRET, BODY, { signature: 'sha256=zz', timestamp: sig.timestamp })).toBe(false);
  });
});
