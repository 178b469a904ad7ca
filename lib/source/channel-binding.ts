/**
 * channel_binding=require over node-postgres, as libpq enforces it: the
 * session must authenticate with SCRAM-SHA-256-PLUS, which binds the SCRAM
 * exchange to this TLS session's server certificate, so a man in the middle
 * holding some certificate the client trusts cannot relay the login. Checked
 * at each authentication request, before anything derived from the password
 * is sent:
 *   - a cleartext or MD5 password request is refused (the password stays here);
 *   - SASL without SCRAM-SHA-256-PLUS on offer, or not over TLS, is refused;
 *   - AuthenticationOk without a completed SCRAM-SHA-256-PLUS exchange (a
 *     server that skipped authentication) ends the session.
 * node-postgres's own enableChannelBinding (set for prefer and require) only
 * prefers PLUS; it has no "require". The checks wrap its handlers by name
 * (pg 8.x); the TLS integration tests fail if a release renames them.
 */

const PLUS = 'SCRAM-SHA-256-PLUS';

/** The parts of node-postgres's Client the checks wrap (its authentication handlers). */
interface AuthenticatingClient {
  connection: {
    stream?: { getPeerCertificate?: unknown; destroy(): void };
    on(event: 'authenticationOk', listener: () => void): unknown;
    emit(event: 'error', error: Error): boolean;
  };
  saslSession?: { mechanism?: string } | null;
  _handleAuthCleartextPassword(msg: unknown): void;
  _handleAuthMD5Password(msg: unknown): void;
  _handleAuthSASL(msg: { mechanisms: string[] }): void;
  _handleAuthSASLFinal(msg: unknown): void;
}

export class ChannelBindingError extends Error {
  override name = 'ChannelBindingError';
}

/** Install the checks on a client before it connects. */
export function requireChannelBinding(pgClient: unknown): void {
  const client = pgClient as AuthenticatingClient;
  const refuse = (why: string) => {
    client.connection.emit('error', new ChannelBindingError(`channel_binding=require, but ${why}`));
    client.connection.stream?.destroy();
  };
  let bound = false;
  const sasl = client._handleAuthSASL.bind(client);
  const saslFinal = client._handleAuthSASLFinal.bind(client);

  client._handleAuthCleartextPassword = () => refuse('the server asked for a cleartext password (not sent)');
  client._handleAuthMD5Password = () => refuse('the server asked for an MD5 password (not sent)');
  client._handleAuthSASL = (msg) => {
    if (typeof client.connection.stream?.getPeerCertificate !== 'function') return refuse('the session is not TLS');
    if (!msg.mechanisms.includes(PLUS)) return refuse(`the server did not offer ${PLUS} (it offered ${msg.mechanisms.join(', ') || 'nothing'})`);
    sasl(msg);
  };
  client._handleAuthSASLFinal = (msg) => {
    const mechanism = client.saslSession?.mechanism;
    saslFinal(msg);
    // node-postgres clears the session once the server's signature checked out.
    if (mechanism === PLUS && client.saslSession === null) bound = true;
  };
  client.connection.on('authenticationOk', () => {
    if (!bound) refuse('the server authenticated the client without channel binding');
  });
}
