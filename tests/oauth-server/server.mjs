// A real OAuth 2.0 / OpenID Connect server for tests/circuit.rs: oidc-provider on loopback over
// https (a certificate from the test's own CA), its authorization and token endpoints at Circuit's
// paths (/oauth/authorize, /oauth/token), and beside it a Circuit-shaped profile route
// (GET /rest/v2/users/profile with the bearer token, looked up with provider.AccessToken.find,
// answering {userId, emailAddress, displayName}).
//
//   node server.mjs --config FILE
//
// The configuration (JSON, written by the test):
//   {"port": 9443, "cert": "leaf.pem", "key": "leaf.key",
//    "clients": [{"client_id": "acme-app", "client_secret": "…", "redirect_uris": ["…"],
//                 "token_endpoint_auth_method": "client_secret_post", "pkce": false}],
//    "users": {"kate": {"email": "kate@acme.example", "name": "Kate"}}}
//
// Any login name signs in with any password at the development login page (oidc-provider's
// devInteractions: the browser clicks through login and consent); a name not in "users" gets
// the e-mail <name>@nowhere.example. Test accounts that provoke failures:
//   oversized         its profile answer is larger than 64 KiB
//   tamper-signature  its ID token's signature is broken
//   tamper-aud        its ID token is re-signed for another audience
//   tamper-expired    its ID token is re-signed with exp an hour ago
//   tamper-nonce      its ID token is re-signed with another nonce
// GET /__connections answers the TCP connections accepted so far, by client address.
// Prints "READY <port>" once it listens.

import { readFileSync } from 'node:fs';
import * as https from 'node:https';
import { generateKeyPairSync, randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';
import * as jose from 'jose';

const args = process.argv.slice(2);
const configFile = args[args.indexOf('--config') + 1];
const config = JSON.parse(readFileSync(configFile, 'utf8'));
const issuer = `https://localhost:${config.port}`;

// The signing key: ours, so that the tamper accounts can re-sign what the provider issued.
const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const jwk = { ...privateKey.export({ format: 'jwk' }), kid: 'test-key-1', alg: 'RS256', use: 'sig' };

const users = config.users || {};
const emailOf = (id) => users[id]?.email ?? (id.includes('@') ? id : `${id}@nowhere.example`);
const nameOf = (id) => users[id]?.name ?? id;
const pkceClients = new Set(config.clients.filter((c) => c.pkce).map((c) => c.client_id));

const provider = new Provider(issuer, {
  clients: config.clients.map((c) => ({
    client_id: c.client_id,
    client_secret: c.client_secret,
    redirect_uris: c.redirect_uris,
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: c.token_endpoint_auth_method || 'client_secret_post',
  })),
  jwks: { keys: [jwk] },
  routes: { authorization: '/oauth/authorize', token: '/oauth/token' },
  scopes: ['openid', 'email', 'profile', 'READ_USER_PROFILE'],
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name', 'preferred_username'] },
  pkce: { required: (ctx, client) => pkceClients.has(client.clientId) },
  // The ID token carries the requested claims (email) as most providers' do.
  conformIdTokenClaims: false,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 600, Grant: 600 },
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: emailOf(id),
          email_verified: true,
          name: nameOf(id),
          preferred_username: emailOf(id),
        };
      },
    };
  },
});

// TCP connections accepted, by client address (the Circuit load example counts ssogate's).
const accepted = {};
provider.use(async (ctx, next) => {
  if (ctx.path === '/__connections') {
    ctx.body = accepted;
    return undefined;
  }
  return next();
});

// The Circuit-shaped profile route.
provider.use(async (ctx, next) => {
  if (ctx.path !== '/rest/v2/users/profile') {
    return next();
  }
  const auth = ctx.get('authorization') || '';
  const token = auth.startsWith('Bearer ') ? auth.slice(7) : '';
  const at = token ? await provider.AccessToken.find(token) : undefined;
  if (!at || at.isExpired) {
    ctx.status = 401;
    ctx.body = { error: 'invalid_token' };
    return undefined;
  }
  const id = at.accountId;
  ctx.body = {
    userId: `circuit-${id}`,
    emailAddress: emailOf(id),
    displayName: id === 'oversized' ? 'x'.repeat(70 * 1024) : nameOf(id),
  };
  return undefined;
});

// The tamper accounts: their ID token is altered on its way out of the token endpoint.
provider.use(async (ctx, next) => {
  await next();
  if (ctx.path !== '/oauth/token' || !ctx.body || typeof ctx.body.id_token !== 'string') {
    return;
  }
  const [h, p, s] = ctx.body.id_token.split('.');
  const claims = JSON.parse(Buffer.from(p, 'base64url').toString());
  const mode = String(claims.sub || '');
  if (!mode.startsWith('tamper-')) {
    return;
  }
  if (mode === 'tamper-signature') {
    const sig = Buffer.from(s, 'base64url');
    sig[sig.length - 1] ^= 1;
    ctx.body = { ...ctx.body, id_token: `${h}.${p}.${sig.toString('base64url')}` };
    return;
  }
  const now = Math.floor(Date.now() / 1000);
  if (mode === 'tamper-aud') claims.aud = 'someone-else';
  if (mode === 'tamper-expired') { claims.iat = now - 7200; claims.exp = now - 3600; }
  if (mode === 'tamper-nonce') claims.nonce = 'not-the-nonce-sent';
  const key = await jose.importJWK(jwk, 'RS256');
  const token = await new jose.SignJWT(claims)
    .setProtectedHeader({ alg: 'RS256', kid: jwk.kid, typ: 'JWT' })
    .sign(key);
  ctx.body = { ...ctx.body, id_token: token };
});

const server = https.createServer(
  { key: readFileSync(config.key), cert: readFileSync(config.cert) },
  provider.callback(),
);
server.keepAliveTimeout = 65_000;
server.on('connection', (socket) => {
  const from = socket.remoteAddress || '?';
  accepted[from] = (accepted[from] || 0) + 1;
});
server.on('error', (e) => {
  console.error(`cannot listen on 127.0.0.1:${config.port}: ${e.message}`);
  process.exit(1);
});
server.listen(config.port, '127.0.0.1', () => {
  console.log(`READY ${config.port}`);
});
