// A real OpenID Connect provider for authmd's tests: panva/oidc-provider 8.x (OpenID Certified) on
// 127.0.0.1 over plain http. 8.x, not 9.x: 9.x supports only Node >= 22 LTS, and Debian 12's apt
// `nodejs` is 18. Started by tests/oidc_server.py; run by hand with
//
//   node tests/oidc/provider.mjs '{"port": 0, "clients": [{"client_id": "c", "client_secret": "s",
//                                   "redirect_uris": ["http://127.0.0.1:8000/oidc/callback"]}]}'
//
// Config: the first argument (JSON, or `@PATH` of a JSON file: an argument is limited to 128 KiB), else
// the env var OIDC_PROVIDER_CONFIG (JSON). Keys:
//   port                 TCP port on 127.0.0.1; 0 (default) = any free port, chosen by the kernel
//   issuer_host          "127.0.0.1" (default) or "localhost": the host in the issuer URL (it always binds
//                        127.0.0.1). "localhost" makes the provider a different *site* from an app on
//                        127.0.0.1 (same host, other port = same site), as in production: SameSite
//                        cookie mistakes then show up in a browser test.
//   clients              [{client_id, client_secret, redirect_uris,
//                          token_endpoint_auth_method = "client_secret_basic" | "client_secret_post",
//                          userinfo_signed_response_alg (optional: UserInfo as a signed JWT, §5.3.2)}]
//                        confidential, response_type code, grant_type authorization_code only.
//                        NB oidc-provider accepts client_secret_basic and client_secret_post alike for
//                        a client registered with either one.
//   registration_token   optional: enables RFC 7591 dynamic registration at POST /reg, gated by this
//                        initial access token (Bearer). A registration may choose its own client_id and
//                        client_secret by sending them in the body; otherwise random ones are issued.
//   accounts             optional: {login: {claim: value | null}} overrides merged over the convention
//                        below (null removes a claim), e.g. {"carol": {"email": "Carol@Example.com"}}
//   claims_in_id_token   optional, default false: where the scope-requested claims (email, email_verified,
//                        name) go when an access token is issued too (the code flow). false is
//                        oidc-provider's default and the conformant behaviour (conformIdTokenClaims: true,
//                        OIDC Core §5.4): the ID token carries sub only, the claims come from UserInfo.
//                        true puts them in the ID token as well (conformIdTokenClaims: false), as some
//                        providers do.
//   userinfo             optional, default true: false disables the UserInfo endpoint (discovery then
//                        lists no userinfo_endpoint, and the claims go in the ID token whatever the above)
//   userinfo_claims      optional: {login: {claim: value | null}} overrides for the UserInfo response only,
//                        `sub` included: a provider whose UserInfo names another subject (§5.3.2)
//   userinfo_fault       optional: the UserInfo endpoint (/me) misbehaves instead of answering:
//                        {"status": 503} answers that status; {"body": "...", "content_type": "..."}
//                        answers 200 with that body; {"hang": true} never answers; {"reset": true}
//                        drops the connection
//   cookie_keys          optional: keys signing the provider's cookies (default: random per run)
//
// Sign-in: devInteractions' login form (GET /interaction/:uid) accepts ANY login and ANY non-empty
// password. The login string decides the account (the convention tests rely on):
//   sub             = the login, exactly as typed                  ("Alice@Example.com" → "Alice@Example.com")
//   email           = the login without a leading "unverified+", lower-cased, only if it contains "@"
//   email_verified  = false if the login starts with "unverified+", else true (only with an email)
//   name            = the part of the email before "@" (or the whole login without one)
//   e.g. "alice@example.com"            → sub alice@example.com, email alice@example.com, verified
//        "unverified+bob@example.com"   → sub unverified+bob@example.com, email bob@example.com, NOT verified
//        "dave"                         → sub dave, no email, no email_verified
// Consent is granted automatically (openid email profile) for every client: login → redirect back.
//
// Behaviour: issuer http://127.0.0.1:PORT (or http://localhost:PORT); PKCE required for every
// authorization request (S256 only); scopes openid email profile; ID tokens RS256 with a key generated
// at start (the email claims in them only with claims_in_id_token); the authorization response
// carries RFC 9207 `iss`. The provider's cookies are named oidcp_* (cookies are not isolated by port:
// plain "_session" on 127.0.0.1 would be shared with the app under test), SameSite=Lax and not Secure
// (plain http).
//
// Prints exactly one line "READY <issuer>" on stdout once listening (other oidc-provider notices may
// be printed around it). Exits 0 on SIGTERM/SIGINT.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import process from 'node:process';

import Provider from 'oidc-provider';

const HOST = '127.0.0.1';
const UNVERIFIED_PREFIX = 'unverified+';
const SCOPES = ['openid', 'email', 'profile'];

function loadConfig() {
  const arg = process.argv[2];
  const raw = arg?.startsWith('@') ? fs.readFileSync(arg.slice(1), 'utf8')
    : arg ?? process.env.OIDC_PROVIDER_CONFIG ?? '{}';
  const config = JSON.parse(raw);
  if (typeof config !== 'object' || config === null || Array.isArray(config)) {
    throw new TypeError('config must be a JSON object');
  }
  return config;
}

function clientMetadata(client) {
  const {
    client_id: clientId, client_secret: clientSecret, redirect_uris: redirectUris,
    token_endpoint_auth_method: authMethod = 'client_secret_basic',
    userinfo_signed_response_alg: userinfoAlg,
  } = client;
  if (typeof clientId !== 'string' || typeof clientSecret !== 'string' || !Array.isArray(redirectUris)) {
    throw new TypeError('each client needs client_id, client_secret (strings) and redirect_uris (list)');
  }
  if (!['client_secret_basic', 'client_secret_post'].includes(authMethod)) {
    throw new TypeError(`unsupported token_endpoint_auth_method ${authMethod}`);
  }
  return {
    client_id: clientId,
    client_secret: clientSecret,
    redirect_uris: redirectUris,
    token_endpoint_auth_method: authMethod,
    response_types: ['code'],
    grant_types: ['authorization_code'],
    id_token_signed_response_alg: 'RS256',
    ...(userinfoAlg ? { userinfo_signed_response_alg: userinfoAlg } : {}),
  };
}

function accountClaims(login, overrides = {}) {
  const unverified = login.startsWith(UNVERIFIED_PREFIX);
  const bare = unverified ? login.slice(UNVERIFIED_PREFIX.length) : login;
  const claims = { sub: login };
  if (bare.includes('@')) {
    claims.email = bare.toLowerCase();
    claims.email_verified = !unverified;
    claims.name = bare.slice(0, bare.indexOf('@'));
  } else {
    claims.name = login;
  }
  return override(claims, overrides, false);
}

// Merge {claim: value | null} over claims (null removes one). `sub` is the login, which oidc-provider
// requires to equal the accountId in the ID token; only UserInfo overrides may change it.
function override(claims, overrides = {}, subToo) {
  for (const [key, value] of Object.entries(overrides)) {
    if (key === 'sub' && !subToo) continue;
    if (value === null) delete claims[key];
    else claims[key] = value;
  }
  return claims;
}

// The UserInfo endpoint misbehaving (config.userinfo_fault), for the relying party's failure paths.
function userinfoFault(fault) {
  return async (ctx, next) => {
    if (ctx.path !== '/me') return next();
    if (fault.hang) return new Promise(() => {}); // closed by closeAllConnections at stop
    if (fault.reset) {
      ctx.respond = false;
      ctx.req.socket.destroy();
      return undefined;
    }
    ctx.status = fault.status ?? 200;
    ctx.type = fault.content_type ?? 'application/json';
    ctx.body = fault.body ?? '';
    return undefined;
  };
}

function signingKey() {
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, alg: 'RS256', use: 'sig', kid: crypto.randomBytes(8).toString('hex') };
}

function htmlEscape(value) {
  return String(value).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function configuration(config) {
  const accounts = config.accounts ?? {};
  const userinfoClaims = config.userinfo_claims ?? {};
  const registrationToken = config.registration_token;
  return {
    clients: (config.clients ?? []).map(clientMetadata),
    clientDefaults: {
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    },
    jwks: { keys: [signingKey()] },
    cookies: {
      keys: config.cookie_keys ?? [crypto.randomBytes(32).toString('hex')],
      names: { session: 'oidcp_session', interaction: 'oidcp_interaction', resume: 'oidcp_resume' },
      // 8.x defaults the session cookie to SameSite=None, which browsers reject without Secure (http here).
      long: { httpOnly: true, sameSite: 'lax' },
      short: { httpOnly: true, sameSite: 'lax' },
    },
    scopes: SCOPES,
    claims: {
      openid: ['sub'],
      email: ['email', 'email_verified'],
      profile: ['name'],
    },
    conformIdTokenClaims: !config.claims_in_id_token,
    pkce: { methods: ['S256'], required: () => true },
    features: {
      devInteractions: { enabled: true },
      userinfo: { enabled: config.userinfo ?? true },
      jwtUserinfo: { enabled: config.userinfo ?? true },
      registration: registrationToken
        ? {
          enabled: true,
          initialAccessToken: registrationToken,
          issueRegistrationAccessToken: false,
          idFactory: (ctx) => (typeof ctx.oidc.body?.client_id === 'string'
            ? ctx.oidc.body.client_id : crypto.randomBytes(12).toString('base64url')),
          secretFactory: (ctx) => (typeof ctx.oidc.body?.client_secret === 'string'
            ? ctx.oidc.body.client_secret : crypto.randomBytes(32).toString('base64url')),
        }
        : { enabled: false },
    },
    async findAccount(_ctx, id) {
      return {
        accountId: id,
        async claims(use) {
          const claims = accountClaims(id, accounts[id]);
          return use === 'userinfo' ? override(claims, userinfoClaims[id], true) : claims;
        },
      };
    },
    // First-party auto-consent: without an existing grant, create one for every configured scope.
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) {
        const found = await ctx.oidc.provider.Grant.find(grantId);
        if (found) return found;
      }
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope(SCOPES.join(' '));
      await grant.save();
      return grant;
    },
    // A self-contained error page (the default one would log a "should change" notice).
    async renderError(ctx, out) {
      ctx.type = 'html';
      const rows = Object.entries(out).map(([k, v]) => (
        `<p><strong>${htmlEscape(k)}</strong>: <span id="${htmlEscape(k)}">${htmlEscape(v)}</span></p>`));
      ctx.body = `<!DOCTYPE html><html><head><title>oops! something went wrong</title></head><body>
<h1>oops! something went wrong</h1>
${rows.join('\n')}
</body></html>`;
    },
    clientBasedCORS: () => false,
    ttl: {
      AccessToken: 3600,
      AuthorizationCode: 120,
      ClientCredentials: 600,
      Grant: 3600,
      IdToken: 3600,
      Interaction: 600,
      Session: 3600,
    },
  };
}

async function main() {
  const config = loadConfig();
  const server = http.createServer();
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(Number(config.port ?? 0), HOST, resolve);
  });
  const issuerHost = config.issuer_host ?? HOST;
  if (!['127.0.0.1', 'localhost'].includes(issuerHost)) {
    throw new TypeError(`issuer_host must be 127.0.0.1 or localhost, not ${issuerHost}`);
  }
  const issuer = `http://${issuerHost}:${server.address().port}`;
  const provider = new Provider(issuer, configuration(config));
  // Static clients are validated lazily (on first use): validate them now, so a bad config fails at start.
  for (const client of config.clients ?? []) {
    if (!(await provider.Client.find(client.client_id))) {
      throw new Error(`client ${client.client_id} could not be loaded`);
    }
  }
  provider.on('server_error', (_ctx, err) => console.error('oidc-provider server_error:', err));
  if (config.userinfo_fault) provider.use(userinfoFault(config.userinfo_fault));
  server.on('request', provider.callback());

  let stopping = false;
  const stop = () => {
    if (stopping) return;
    stopping = true;
    server.close(() => process.exit(0));
    server.closeAllConnections();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  process.stdout.write(`READY ${issuer}\n`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
