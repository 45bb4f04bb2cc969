// An MCP client built on the official TypeScript SDK (@modelcontextprotocol/sdk, pinned in package.json),
// used unmodified: its Client, its StreamableHTTPClientTransport and its OAuth code (auth.js) do every
// protocol step. This file is only the application around them, what any app using the SDK writes:
// an OAuthClientProvider that keeps its state in memory, a loopback HTTP listener for the redirect
// (RFC 8252 §7.3), and the SDK's documented pattern on UnauthorizedError (wait for the redirect, check
// `state` and `iss`, transport.finishAuth(code), connect or send again).
//
// Driven by tests/mcp_sdk_clients.py over stdin/stdout, one JSON object per line:
//
//   node tests/mcp_clients/client.mjs '{"server_url": "http://127.0.0.1:8000/api/mcp",
//                                        "client_metadata_url": "https://127.0.0.1:4443/ts-client.json",
//                                        "client_name": "…", "scope": "…", "callback_timeout_ms": 60000}'
//
// It prints {"event": "listening", "redirect_uri": …} first, then reads commands from stdin:
//   {"cmd": "connect"}                                   connect (initialize); authorize if asked to
//   {"cmd": "call", "name": …, "arguments": {…},        one tools/call; on UnauthorizedError with
//    "authorize": "wait" | "report"}                      "wait", complete the authorization and retry once
//   {"cmd": "exit"}
// and answers each command with events, the last one {"event": "done", "cmd": …, "ok": bool, …}. Events on
// the way: "http" (every request the SDK made through its fetch: method, url, status, WWW-Authenticate, the
// token request's grant_type, the JSON-RPC method; for a JSON request that is not JSON-RPC, a dynamic client
// registration, the body it sent and the JSON answer), "authorize" (redirectToAuthorization's URL),
// "callback" (what the redirect brought), "tokens" (saveTokens), "client_information", "invalidate".
// Diagnostics go to stderr. Without client_metadata_url the SDK falls back to dynamic registration (RFC 7591).

import * as crypto from 'node:crypto';
import * as http from 'node:http';
import process from 'node:process';
import * as readline from 'node:readline';

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';

const HOST = '127.0.0.1';
const CALLBACK_PATH = '/callback';

const config = JSON.parse(process.argv[2] ?? '{}');
const serverUrl = new URL(config.server_url);
const callbackTimeoutMs = config.callback_timeout_ms ?? 60_000;

function emit(event) {
  process.stdout.write(`${JSON.stringify(event)}\n`);
}

function describe(error) {
  return {
    type: error?.constructor?.name ?? typeof error,
    message: String(error?.message ?? error),
    code: error?.code,
  };
}

// --- the redirect URI: a loopback listener, any port (RFC 8252 §7.3) -------------------------------

let pendingCallback = null; // {resolve, timer} while the app waits for its redirect
const listener = http.createServer((request, response) => {
  const url = new URL(request.url, `http://${HOST}`);
  if (url.pathname !== CALLBACK_PATH) {
    response.writeHead(404, { 'content-type': 'text/plain' }).end('not found');
    return;
  }
  const params = Object.fromEntries(url.searchParams);
  response.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
  response.end('<!doctype html><title>Connected</title><h1>Authorization received</h1>'
    + '<p>You can close this window and return to the application.</p>');
  emit({ event: 'callback', params });
  if (pendingCallback) {
    clearTimeout(pendingCallback.timer);
    pendingCallback.resolve(params);
    pendingCallback = null;
  }
});
await new Promise((resolve) => listener.listen(0, HOST, resolve));
const redirectUri = `http://${HOST}:${listener.address().port}${CALLBACK_PATH}`;

function nextCallback() {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      pendingCallback = null;
      reject(new Error(`no redirect to ${redirectUri} within ${callbackTimeoutMs} ms`));
    }, callbackTimeoutMs);
    pendingCallback = { resolve, timer };
  });
}

// --- the OAuthClientProvider: the SDK asks it for state and tells it what to keep ------------------

class MemoryProvider {
  constructor() {
    this.clientMetadataUrl = config.client_metadata_url || undefined;
    this._client = undefined;
    this._tokens = undefined;
    this._verifier = undefined;
    this.expectedState = undefined;
    this.authorizationUrl = undefined;
  }

  get redirectUrl() {
    return redirectUri;
  }

  get clientMetadata() {
    // What dynamic registration would send; with a metadata document URL the document says it.
    return {
      client_name: config.client_name,
      scope: config.scope, // the SDK's last resort: a 401's `scope` and the metadata's scopes_supported come first
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  }

  state() {
    this.expectedState = crypto.randomBytes(24).toString('base64url');
    return this.expectedState;
  }

  clientInformation() {
    return this._client;
  }

  saveClientInformation(information) {
    this._client = information;
    emit({ event: 'client_information', information });
  }

  tokens() {
    return this._tokens;
  }

  saveTokens(tokens) {
    this._tokens = tokens;
    emit({ event: 'tokens', tokens });
  }

  redirectToAuthorization(authorizationUrl) {
    this.authorizationUrl = authorizationUrl.href;
    emit({ event: 'authorize', url: authorizationUrl.href });
  }

  saveCodeVerifier(verifier) {
    this._verifier = verifier;
  }

  codeVerifier() {
    if (!this._verifier) throw new Error('no code verifier saved');
    return this._verifier;
  }

  invalidateCredentials(scope) {
    emit({ event: 'invalidate', scope });
    if (scope === 'all' || scope === 'client') this._client = undefined;
    if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
    if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
  }
}

// --- every request the SDK makes goes through this fetch (the transport's `fetch` option) ----------

function formOf(body) {
  if (body instanceof URLSearchParams) return body;
  if (typeof body === 'string' && !body.startsWith('{')) return new URLSearchParams(body);
  return undefined;
}

function jsonOf(body) {
  if (typeof body !== 'string' || !body.startsWith('{')) return undefined;
  try {
    return JSON.parse(body);
  } catch {
    return undefined;
  }
}

async function recordingFetch(input, init) {
  const url = input instanceof Request ? input.url : String(input);
  const method = init?.method ?? (input instanceof Request ? input.method : 'GET');
  const response = await fetch(input, init);
  const message = jsonOf(init?.body);
  const tool = message?.params?.name;
  const rpc = message?.jsonrpc ? (tool ? `${message.method}:${tool}` : message.method) : undefined;
  // A JSON body that is not JSON-RPC (dynamic client registration): what the SDK sent and the JSON answer.
  const sent = message && !message.jsonrpc ? message : undefined;
  const json = (response.headers.get('content-type') ?? '').includes('json');
  emit({
    event: 'http',
    method,
    url,
    status: response.status,
    www_authenticate: response.headers.get('www-authenticate'),
    grant_type: formOf(init?.body)?.get('grant_type') ?? undefined,
    rpc,
    sent,
    answer: sent && json ? await response.clone().json().catch(() => undefined) : undefined,
  });
  return response;
}

// --- the application ---------------------------------------------------------------------------------

const provider = new MemoryProvider();
const client = new Client({ name: 'authmd-e2e-typescript', version: '1.0.0' });
let transport;

function newTransport() {
  transport = new StreamableHTTPClientTransport(serverUrl, { authProvider: provider, fetch: recordingFetch });
  return transport;
}

async function completeAuthorization() {
  // The SDK asked for the human (redirectToAuthorization) and threw UnauthorizedError: wait for the
  // redirect, check it answers our request (state: the SDK 1.32.2 leaves that to the app, and does not
  // read RFC 9207 `iss` at all; the test checks `iss` from the "callback" event), then let the SDK
  // redeem the code.
  const params = await nextCallback();
  if (params.state !== provider.expectedState) throw new Error('the redirect carries another state');
  if (params.error) throw new Error(`authorization refused: ${params.error}: ${params.error_description ?? ''}`);
  await transport.finishAuth(params.code);
}

async function connect() {
  try {
    await client.connect(newTransport());
  } catch (error) {
    if (!(error instanceof UnauthorizedError)) throw error;
    await completeAuthorization();
    await client.connect(newTransport()); // the SDK's examples connect again on a new transport
  }
}

async function call(name, args, onAuthorize) {
  try {
    return await client.callTool({ name, arguments: args });
  } catch (error) {
    if (!(error instanceof UnauthorizedError) || onAuthorize !== 'wait') throw error;
    await completeAuthorization();
    return await client.callTool({ name, arguments: args });
  }
}

async function handle(command) {
  switch (command.cmd) {
    case 'connect':
      await connect();
      return { server: client.getServerVersion() };
    case 'call':
      return { result: await call(command.name, command.arguments ?? {}, command.authorize ?? 'report') };
    case 'exit':
      return {};
    default:
      throw new Error(`unknown command ${command.cmd}`);
  }
}

emit({ event: 'listening', redirect_uri: redirectUri });

const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of lines) {
  if (!line.trim()) continue;
  const command = JSON.parse(line);
  try {
    emit({ event: 'done', cmd: command.cmd, ok: true, ...(await handle(command)) });
  } catch (error) {
    process.stderr.write(`${command.cmd}: ${error?.stack ?? error}\n`);
    emit({ event: 'done', cmd: command.cmd, ok: false, error: describe(error) });
  }
  if (command.cmd === 'exit') break;
}
await client.close().catch(() => {});
listener.close();
listener.closeAllConnections?.();
process.exit(0);
