// A minimal platform backend on bankgate, written with a certified OAuth client library
// (openid-client 6): RFC 8414 discovery, private_key_jwt, DPoP, PAR with a Rich Authorization
// Request and PKCE, the code exchange, data reads, a refresh and a revocation. It plays the
// user with plain HTTP (the consent screen, then the sandbox bank, which approves at once).
// Every answer is checked; any failure exits non-zero.
//
// Environment: BANKGATE_URL (the gateway's issuer, e.g. http://127.0.0.1:8080) and
// BANKGATE_ADMIN_TOKEN (the operator token, to register the platform). Optional: BANK (one
// bank; by default the whole flow runs at every bank the gateway lists at GET /v1/banks, each
// with a platform registered for it) and PURPOSE (default balance-alerts).

import assert from 'node:assert/strict'
import * as client from 'openid-client'

const issuer = new URL(required('BANKGATE_URL'))
const adminToken = required('BANKGATE_ADMIN_TOKEN')
const purpose = process.env.PURPOSE || 'balance-alerts'
// Where the user's browser would come back to the platform; this backend only reads it.
const redirectUri = 'http://127.0.0.1/platform-node/callback'

function required(name) {
  const value = process.env[name]
  if (!value) {
    throw new Error(`${name} is required`)
  }
  return value
}

function step(text) {
  console.log(`\n== ${text}`)
}

const banks = process.env.BANK
  ? [process.env.BANK]
  : (await (await fetch(new URL('/v1/banks', issuer))).json()).banks.map((bank) => bank.id)
assert.ok(banks.length > 0, 'the gateway lists no bank')
for (const bank of banks) {
  console.log(`\n######## ${bank}`)
  await connect(bank)
}
console.log(`\nPlatform example complete at ${banks.join(', ')}.`)

/** The whole life of one platform and one consent at `bank`. */
async function connect(bank) {
  // 1. Keys. One ES256 key signs client assertions: its public half is registered. Another signs
  //    DPoP proofs: it is never registered, and every token gets bound to it.
  const assertionKey = await signingKey('assertion-1')
  const dpopKeys = await client.randomDPoPKeyPair('ES256')

  // 2. The operator registers the platform (POST /admin/clients): FAPI 2.0 is the default,
  //    private_key_jwt with DPoP-bound tokens.
  const clientId = `platform-node-${bank}-${client.randomState().slice(0, 8)}`
  step(`Register ${clientId} (private_key_jwt, DPoP)`)
  const registration = await fetch(new URL('/admin/clients', issuer), {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({
      client_id: clientId,
      name: 'Node platform example',
      redirect_uris: [redirectUri],
      allowed_purposes: [purpose],
      jwks: { keys: [assertionKey.jwk] },
    }),
  })
  const registered = await registration.json()
  assert.equal(registration.status, 201, JSON.stringify(registered))
  assert.equal(registered.token_endpoint_auth_method, 'private_key_jwt')
  assert.equal(registered.dpop_bound_access_tokens, true)
  console.log(`registration_client_uri=${registered.registration_client_uri}`)

  // 3. Discovery: bankgate publishes RFC 8414 metadata (not OpenID discovery). The sandbox
  //    gateway listens on plain http on loopback, hence allowInsecureRequests.
  const config = await client.discovery(
    issuer,
    clientId,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: assertionKey.privateKey, kid: assertionKey.kid }),
    { algorithm: 'oauth2', execute: [client.allowInsecureRequests] },
  )
  const server = config.serverMetadata()
  step('Discovery (RFC 8414)')
  assert.equal(server.issuer, issuer.href.replace(/\/$/, ''))
  assert.equal(server.require_pushed_authorization_requests, true)
  assert.deepEqual(server.token_endpoint_auth_methods_supported, ['private_key_jwt'])
  assert.ok(server.dpop_signing_alg_values_supported.includes('ES256'))
  console.log(`issuer=${server.issuer} par=${server.pushed_authorization_request_endpoint}`)
  const DPoP = client.getDPoPHandle(config, dpopKeys)

  // 4. PAR with PKCE and one authorization_details entry (RFC 9396); the DPoP proof binds the
  //    code to the DPoP key (RFC 9449 §10).
  const codeVerifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const authorizationDetails = [{
    type: 'account_information',
    bank,
    purpose,
    scopes: ['accounts', 'balances'],
    history_days: 0,
    expires_in_days: 90,
    user_ref: 'u-node-1',
  }]
  const authorizationUrl = await client.buildAuthorizationUrlWithPAR(
    config,
    {
      redirect_uri: redirectUri,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      authorization_details: JSON.stringify(authorizationDetails),
    },
    { DPoP },
  )
  step('Pushed authorization request (PAR, PKCE S256, RAR, DPoP)')
  assert.ok(authorizationUrl.searchParams.get('request_uri'))
  console.log(`send the user to ${authorizationUrl.origin}${authorizationUrl.pathname}?client_id=…&request_uri=…`)

  // 5. The user: the consent screen, "continue to your bank", the bank's approval, back through
  //    the gateway's callback to the platform's redirect URI.
  const callbackUrl = await playTheUser(authorizationUrl)
  step('The user approved; the gateway redirects to the platform')
  assert.equal(callbackUrl.searchParams.get('iss'), server.issuer)
  console.log(`${callbackUrl.origin}${callbackUrl.pathname}?code=…&state=…&iss=${callbackUrl.searchParams.get('iss')}`)

  // 6. The code exchange: client assertion, PKCE verifier, DPoP proof (the library answers the
  //    use_dpop_nonce challenge itself). It checks state and iss.
  const tokens = await client.authorizationCodeGrant(
    config,
    callbackUrl,
    { pkceCodeVerifier: codeVerifier, expectedState: state },
    undefined,
    { DPoP },
  )
  step('Token')
  assert.equal(tokens.token_type, 'dpop')
  assert.ok(tokens.access_token && tokens.refresh_token)
  assert.equal(tokens.authorization_details[0].bank, bank)
  assert.deepEqual(tokens.authorization_details[0].scopes, ['accounts', 'balances'])
  console.log(`token_type=${tokens.token_type} expires_in=${tokens.expires_in} scope="${tokens.scope}" consent_id=${tokens.consent_id}`)

  // 7. Data: accounts, then one account's balances (DPoP-bound: a fresh proof per request).
  const accounts = await read(config, DPoP, tokens.access_token, '/v1/accounts')
  assert.ok(accounts.accounts.length > 0, 'at least one account')
  const account = accounts.accounts[0]
  step('GET /v1/accounts')
  console.log(accounts.accounts.map((a) => `${a.id} ${a.display_name ?? ''} ${a.currency ?? ''}`).join('\n'))
  const balances = await read(config, DPoP, tokens.access_token, `/v1/accounts/${encodeURIComponent(account.id)}/balances`)
  step(`GET /v1/accounts/${account.id}/balances`)
  assert.ok(balances.balances.length > 0, 'at least one balance')
  for (const balance of balances.balances) {
    // Money is a decimal string, never a JSON number.
    assert.equal(typeof balance.amount, 'string', JSON.stringify(balance))
    assert.match(balance.amount, /^-?\d+(\.\d+)?$/)
    console.log(`${balance.type} ${balance.amount} ${balance.currency}`)
  }
  // Outside the purpose: transactions are not in a balance-alerts consent.
  const outside = await client.fetchProtectedResource(
    config,
    tokens.access_token,
    new URL(`/v1/accounts/${encodeURIComponent(account.id)}/transactions`, issuer),
    'GET',
    undefined,
    undefined,
    { DPoP },
  )
  assert.equal(outside.status, 403, 'transactions are outside the purpose')
  assert.match(outside.headers.get('content-type'), /application\/problem\+json/)

  // 8. Refresh: a new access token, bound to the same DPoP key; the data reads again.
  const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP })
  step('Refresh')
  assert.equal(refreshed.token_type, 'dpop')
  assert.notEqual(refreshed.access_token, tokens.access_token)
  assert.equal(refreshed.consent_id, tokens.consent_id)
  await read(config, DPoP, refreshed.access_token, '/v1/accounts')
  console.log(`token_type=${refreshed.token_type} expires_in=${refreshed.expires_in} consent_id=${refreshed.consent_id}`)

  // 9. Key rotation without the operator (RFC 7592): the platform replaces its registered key
  //    at its configuration endpoint with its registration access token. From then on only the
  //    new key authenticates; the consent and its tokens are untouched.
  const newKey = await signingKey('assertion-2')
  const rotation = await fetch(registered.registration_client_uri, {
    method: 'PUT',
    headers: {
      authorization: `Bearer ${registered.registration_access_token}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify({
      client_id: clientId,
      jwks: { keys: [newKey.jwk] },
    }),
  })
  const rotated = await rotation.json()
  assert.equal(rotation.status, 200, JSON.stringify(rotated))
  assert.deepEqual(rotated.jwks.keys.map((key) => key.kid), [newKey.kid])
  const rotatedConfig = new client.Configuration(
    server,
    clientId,
    { token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: newKey.privateKey, kid: newKey.kid }),
  )
  client.allowInsecureRequests(rotatedConfig)
  step(`Rotate the client key (RFC 7592): kid ${assertionKey.kid} -> ${newKey.kid}`)
  await assert.rejects(
    client.refreshTokenGrant(config, tokens.refresh_token, undefined, { DPoP }),
    (error) => error.code === 'OAUTH_RESPONSE_BODY_ERROR' && error.error === 'invalid_client',
    'the old key no longer authenticates',
  )
  console.log('old key: invalid_client; the new key signs from now on')

  // 10. Revocation (RFC 7009): revoking the refresh token ends the consent, so neither the
  //     refresh token nor the access tokens work afterwards.
  await client.tokenRevocation(rotatedConfig, tokens.refresh_token, { token_type_hint: 'refresh_token' })
  step('Revoke the refresh token (RFC 7009): the consent ends')
  await assert.rejects(
    client.refreshTokenGrant(rotatedConfig, tokens.refresh_token, undefined, { DPoP }),
    (error) => error.code === 'OAUTH_RESPONSE_BODY_ERROR' && error.error === 'invalid_grant',
  )
  // A 401 with a challenge is thrown by the library: the token was revoked with its consent.
  await assert.rejects(
    client.fetchProtectedResource(
      config,
      refreshed.access_token,
      new URL('/v1/accounts', issuer),
      'GET',
      undefined,
      undefined,
      { DPoP },
    ),
    (error) => error.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE' && error.status === 401 &&
      error.cause[0].scheme === 'dpop' && error.cause[0].parameters.error === 'invalid_token',
  )
  console.log('refresh token: invalid_grant; access token: 401, DPoP error="invalid_token"')
}

/** A new ES256 key pair for client assertions: the private key and its public JWK. */
async function signingKey(kid) {
  const pair = await crypto.subtle.generateKey(
    { name: 'ECDSA', namedCurve: 'P-256' },
    true,
    ['sign', 'verify'],
  )
  const { kty, crv, x, y } = await crypto.subtle.exportKey('jwk', pair.publicKey)
  return { kid, privateKey: pair.privateKey, jwk: { kty, crv, x, y, kid, alg: 'ES256', use: 'sig' } }
}

/** GET `path` with the DPoP-bound `accessToken`; the JSON body of a 200. */
async function read(config, DPoP, accessToken, path) {
  const response = await client.fetchProtectedResource(
    config,
    accessToken,
    new URL(path, issuer),
    'GET',
    undefined,
    undefined,
    { DPoP },
  )
  const body = await response.text()
  assert.equal(response.status, 200, `${path}: ${body}`)
  return JSON.parse(body)
}

/**
 * Plays the user's browser, as demo::PlatformClient does: opens the consent screen, approves,
 * follows the redirect to the bank (whose sandbox approves at once) and the bank's redirect to
 * the gateway's callback. Returns the URL the gateway sends the user back to.
 */
async function playTheUser(authorizationUrl) {
  const screen = await fetch(authorizationUrl, { redirect: 'manual' })
  const html = await screen.text()
  assert.equal(screen.status, 200, html)
  const decision = new URLSearchParams({
    consent_id: hiddenInput(html, 'consent_id'),
    screen_token: hiddenInput(html, 'screen_token'),
    decision: 'approve',
  })
  const toBank = await fetch(new URL('/oauth/authorize', issuer), {
    method: 'POST',
    body: decision,
    redirect: 'manual',
  })
  const fromBank = await fetch(location(toBank), { redirect: 'manual' })
  const back = await fetch(location(fromBank), { redirect: 'manual' })
  const callback = new URL(location(back))
  assert.equal(`${callback.origin}${callback.pathname}`, redirectUri)
  assert.equal(callback.searchParams.get('error'), null, callback.href)
  return callback
}

function location(response) {
  assert.ok(
    response.status >= 300 && response.status < 400,
    `expected a redirect from ${response.url}, got ${response.status}`,
  )
  const to = response.headers.get('location')
  assert.ok(to, `redirect without Location from ${response.url}`)
  return new URL(to, response.url).href
}

function hiddenInput(html, name) {
  const match = html.match(new RegExp(`name="${name}" value="([^"]*)"`))
  assert.ok(match, `no ${name} on the consent screen`)
  return match[1]
}
