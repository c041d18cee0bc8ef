'use strict';
// request(): bearer token, envelope, errors, and recovery from expired or revoked sessions.

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, envelope, failure, tick, storeSession } = require('./fake-wx.js');

const PROFILE = 'GET /api/v1/user/profile';
const REFRESH = 'POST /api/v1/auth/refresh';
const LOGIN = 'POST /api/v1/auth/wx-login';

test('request sends the stored bearer token and resolves the envelope data', async () => {
  const { lib, wx, backend } = setup();
  const tokens = storeSession(wx, backend);
  const data = await lib.request({ url: '/api/v1/user/profile' });
  assert.equal(data.openid, 'oALICE');
  assert.equal(data.token, tokens.access_token);
  const [req] = wx.requestsTo(PROFILE);
  assert.equal(req.url, 'https://api.test/api/v1/user/profile');
  assert.equal(req.header.Authorization, 'Bearer ' + tokens.access_token);
  assert.equal(req.timeout, 10000);
});

test('request passes method, data, header and the configured timeout through', async () => {
  const { lib, wx } = setup({
    config: { timeout: 1234 },
    routes: { 'POST /api/v1/recipes': (req) => envelope({ echo: req.data, trace: req.header['X-Trace'] }) },
  });
  const data = await lib.request({
    url: '/api/v1/recipes',
    method: 'POST',
    data: { title: '红烧肉' },
    header: { 'X-Trace': 't1' },
  });
  assert.deepEqual(data, { echo: { title: '红烧肉' }, trace: 't1' });
  assert.equal(wx.calls.requests[0].timeout, 1234);
});

test('with no stored token request sends no Authorization header', async () => {
  const { lib, wx } = setup();
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'TOKEN_MISSING' });
  const reqs = wx.requestsTo(PROFILE);
  assert.equal(reqs.length, 1);
  assert.equal('Authorization' in reqs[0].header, false);
  // TOKEN_MISSING is "every other error": no silent login behind the page's back.
  assert.equal(wx.calls.login, 0);
});

test('a server error rejects at once with its status, reason and message', async () => {
  const { lib, wx, backend } = setup({
    routes: { 'PATCH /api/v1/user/profile': () => failure(400, 'CONTENT_REJECTED', '昵称包含违规内容') },
  });
  storeSession(wx, backend);
  await assert.rejects(lib.request({ url: '/api/v1/user/profile', method: 'PATCH', data: { nickname: 'x' } }), (err) => {
    assert.ok(err instanceof lib.AuthError);
    assert.equal(err.status, 400);
    assert.equal(err.reason, 'CONTENT_REJECTED');
    assert.equal(err.message, '昵称包含违规内容');
    return true;
  });
  assert.equal(wx.calls.requests.length, 1);
  assert.equal(lib.getLocalToken(), 'access-1');
});

test('other 401s (TOKEN_INVALID) reject at once without refresh or login', async () => {
  const { lib, wx } = setup();
  wx.storage.set('access_token', 'forged');
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'TOKEN_INVALID' });
  assert.equal(wx.calls.requests.length, 1);
  assert.equal(wx.calls.login, 0);
});

test('a wx.request timeout rejects TIMEOUT with status 0', async () => {
  const { lib } = setup({ routes: { [PROFILE]: () => ({ fail: 'request:fail timeout' }) } });
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), (err) => {
    assert.ok(err instanceof lib.AuthError);
    assert.equal(err.status, 0);
    assert.equal(err.reason, 'TIMEOUT');
    assert.equal(err.message, 'request:fail timeout');
    return true;
  });
});

test('any other wx.request failure rejects NETWORK_ERROR with status 0', async () => {
  const { lib, wx } = setup({ routes: { [PROFILE]: () => ({ fail: 'request:fail ssl hand shake error' }) } });
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 0, reason: 'NETWORK_ERROR' });
  assert.equal(wx.calls.requests.length, 1);
});

test('an answer that is not the API envelope (gateway page) rejects NETWORK_ERROR with its HTTP status', async () => {
  const { lib } = setup({ routes: { [PROFILE]: () => ({ statusCode: 502, data: '<html>Bad Gateway</html>' }) } });
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 502, reason: 'NETWORK_ERROR' });
});

test('an envelope delivered as a string (no JSON parsing by wx) is still understood', async () => {
  const asText = () => ({ statusCode: 200, data: JSON.stringify(envelope({ ok: 1 }).data) });
  const { lib } = setup({ routes: { [PROFILE]: asText } });
  assert.deepEqual(await lib.request({ url: '/api/v1/user/profile' }), { ok: 1 });
});

test('TOKEN_EXPIRED: one refresh, then one retry with the new token', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  const data = await lib.request({ url: '/api/v1/user/profile' });
  assert.equal(data.token, 'access-2');
  const refreshes = wx.requestsTo(REFRESH);
  assert.equal(refreshes.length, 1);
  assert.deepEqual(refreshes[0].data, { refresh_token: old.refresh_token });
  const profiles = wx.requestsTo(PROFILE);
  assert.equal(profiles.length, 2);
  assert.equal(profiles[1].header.Authorization, 'Bearer access-2');
  assert.equal(wx.storage.get('access_token'), 'access-2');
  assert.equal(wx.storage.get('refresh_token'), 'refresh-2');
  assert.equal(wx.calls.login, 0);
});

test('N concurrent requests that all get TOKEN_EXPIRED share exactly one refresh and each retries once', async () => {
  const N = 6;
  const { lib, wx, backend } = setup();
  const refresh = backend.routes[REFRESH];
  // A slow refresh, so every request's 401 arrives while it is still in flight.
  wx.routes[REFRESH] = (req) => tick(20).then(() => refresh(req));
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  const results = await Promise.all(Array.from({ length: N }, () => lib.request({ url: '/api/v1/user/profile' })));
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  const profiles = wx.requestsTo(PROFILE);
  assert.equal(profiles.length, 2 * N);
  assert.equal(profiles.filter((r) => r.header.Authorization === 'Bearer ' + old.access_token).length, N);
  assert.equal(profiles.filter((r) => r.header.Authorization === 'Bearer access-2').length, N);
  for (const r of results) assert.equal(r.token, 'access-2');
});

test('a TOKEN_EXPIRED that arrives after another request already refreshed just retries', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  const profile = backend.routes[PROFILE];
  let first = true;
  // The first request's answer is held back until the second one has refreshed.
  let release;
  const held = new Promise((resolve) => (release = resolve));
  wx.routes[PROFILE] = (req) => {
    if (first) {
      first = false;
      const answer = profile(req);
      return held.then(() => answer);
    }
    return profile(req);
  };
  const slow = lib.request({ url: '/api/v1/user/profile' });
  const fast = await lib.request({ url: '/api/v1/user/profile' });
  release();
  const late = await slow;
  assert.equal(fast.token, 'access-2');
  assert.equal(late.token, 'access-2');
  assert.equal(wx.requestsTo(REFRESH).length, 1);
});

test('a request that keeps answering TOKEN_EXPIRED rejects after one refresh and one retry (no loop)', async () => {
  const { lib, wx, backend } = setup({ routes: { [PROFILE]: () => failure(401, 'TOKEN_EXPIRED') } });
  storeSession(wx, backend);
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'TOKEN_EXPIRED' });
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 2);
  assert.equal(wx.calls.login, 0);
});

test('a refresh that fails on the network rejects with that error and keeps the session', async () => {
  const { lib, wx, backend } = setup({ routes: { [REFRESH]: () => ({ fail: 'request:fail timeout' }) } });
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 0, reason: 'TIMEOUT' });
  assert.equal(wx.requestsTo(PROFILE).length, 1);
  assert.equal(wx.calls.login, 0);
  assert.equal(wx.storage.get('refresh_token'), old.refresh_token);
});

test('SESSION_REVOKED: clear local state, one silent login, one retry', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  backend.revokeAll();
  let storedAtLogin;
  const login = backend.routes[LOGIN];
  wx.routes[LOGIN] = (req) => {
    storedAtLogin = { access: wx.storage.get('access_token'), refresh: wx.storage.get('refresh_token') };
    return login(req);
  };
  const data = await lib.request({ url: '/api/v1/user/profile' });
  assert.deepEqual(storedAtLogin, { access: undefined, refresh: undefined });
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(REFRESH).length, 0);
  const profiles = wx.requestsTo(PROFILE);
  assert.equal(profiles.length, 2);
  assert.equal(profiles[0].header.Authorization, 'Bearer ' + old.access_token);
  assert.equal(profiles[1].header.Authorization, 'Bearer access-2');
  assert.equal(data.token, 'access-2');
  assert.equal(lib.getLocalToken(), 'access-2');
});

test('N concurrent requests that all get SESSION_REVOKED share one silent login', async () => {
  const N = 5;
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  backend.revokeAll();
  const results = await Promise.all(Array.from({ length: N }, () => lib.request({ url: '/api/v1/user/profile' })));
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 2 * N);
  for (const r of results) assert.equal(r.token, 'access-2');
});

test('a retried request that is revoked again rejects: one login, no loop', async () => {
  const { lib, wx, backend } = setup({ routes: { [PROFILE]: () => failure(401, 'SESSION_REVOKED') } });
  storeSession(wx, backend);
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'SESSION_REVOKED' });
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 2);
});

test('SESSION_REVOKED then a silent login whose code is rejected: rejects with that reason, code not retried', async () => {
  const { lib, wx, backend } = setup({ routes: { [LOGIN]: () => failure(401, 'WECHAT_CODE_INVALID', '(错误码: 40163)') } });
  storeSession(wx, backend);
  backend.revokeAll();
  await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'WECHAT_CODE_INVALID' });
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 1);
  assert.equal(lib.getLocalToken(), '');
});

test('REFRESH_TOKEN_REUSED during refresh: clear local state, one silent login, one retry', async () => {
  const { lib, wx, backend } = setup({ routes: { [REFRESH]: () => failure(401, 'REFRESH_TOKEN_REUSED') } });
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  let storedAtLogin;
  const login = backend.routes[LOGIN];
  wx.routes[LOGIN] = (req) => {
    storedAtLogin = wx.storage.get('refresh_token');
    return login(req);
  };
  const data = await lib.request({ url: '/api/v1/user/profile' });
  assert.equal(storedAtLogin, undefined);
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 2);
  assert.equal(data.token, 'access-2');
  assert.equal(wx.storage.get('refresh_token'), 'refresh-2');
});

test('REFRESH_TOKEN_INVALID during refresh, with N requests in flight: one refresh, one login', async () => {
  const N = 4;
  const slowInvalid = () => tick(10).then(() => failure(401, 'REFRESH_TOKEN_INVALID'));
  const { lib, wx, backend } = setup({ routes: { [REFRESH]: slowInvalid } });
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  const results = await Promise.all(Array.from({ length: N }, () => lib.request({ url: '/api/v1/user/profile' })));
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(PROFILE).length, 2 * N);
  for (const r of results) assert.equal(r.token, 'access-2');
});

test('TOKEN_EXPIRED with no refresh token stored: silent login and one retry, no refresh call', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  wx.storage.delete('refresh_token');
  const data = await lib.request({ url: '/api/v1/user/profile' });
  assert.equal(wx.requestsTo(REFRESH).length, 0);
  assert.equal(wx.calls.login, 1);
  assert.equal(data.token, 'access-2');
});
