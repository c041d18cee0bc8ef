'use strict';
// refreshToken, logout, local state readers and updateProfile.

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, failure, tick, storeSession } = require('./fake-wx.js');

const REFRESH = 'POST /api/v1/auth/refresh';
const LOGOUT = 'POST /api/v1/auth/logout';

test('refreshToken posts the refresh token, stores the rotated pair and resolves the token data', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  const data = await lib.refreshToken();
  assert.equal(data.access_token, 'access-2');
  assert.equal(data.refresh_token, 'refresh-2');
  const [req] = wx.requestsTo(REFRESH);
  assert.equal(req.url, 'https://api.test/api/v1/auth/refresh');
  assert.deepEqual(req.data, { refresh_token: old.refresh_token });
  assert.equal(wx.storage.get('access_token'), 'access-2');
  assert.equal(wx.storage.get('refresh_token'), 'refresh-2');
});

test('concurrent refreshToken calls share one refresh', async () => {
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  const results = await Promise.all([lib.refreshToken(), lib.refreshToken(), lib.refreshToken()]);
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  assert.equal(results[1], results[0]);
  assert.equal(results[2], results[0]);
});

for (const reason of ['REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_REUSED', 'SESSION_REVOKED']) {
  test('refreshToken on ' + reason + ' clears local state and rejects', async () => {
    const { lib, wx, backend } = setup({ routes: { [REFRESH]: () => failure(401, reason) } });
    storeSession(wx, backend);
    await assert.rejects(lib.refreshToken(), (err) => {
      assert.ok(err instanceof lib.AuthError);
      assert.equal(err.status, 401);
      assert.equal(err.reason, reason);
      return true;
    });
    assert.equal(wx.storage.size, 0);
    assert.equal(await lib.checkLoginStatus(), false);
    assert.equal(lib.getLocalUserInfo(), null);
  });
}

test('refreshToken on a network failure rejects but keeps the session for a later try', async () => {
  const { lib, wx, backend } = setup({ routes: { [REFRESH]: () => ({ fail: 'request:fail' }) } });
  const old = storeSession(wx, backend);
  await assert.rejects(lib.refreshToken(), { status: 0, reason: 'NETWORK_ERROR' });
  assert.equal(wx.storage.get('refresh_token'), old.refresh_token);
  assert.equal(lib.getLocalToken(), old.access_token);
});

test('refreshToken that fails does not wipe a session a parallel login stored meanwhile', async () => {
  const slowInvalid = () => tick(20).then(() => failure(401, 'REFRESH_TOKEN_INVALID'));
  const { lib, wx, backend } = setup({ routes: { [REFRESH]: slowInvalid } });
  storeSession(wx, backend);
  const refreshing = lib.refreshToken();
  await lib.wechatLogin();
  await assert.rejects(refreshing, { reason: 'REFRESH_TOKEN_INVALID' });
  assert.equal(lib.getLocalToken(), 'access-2');
});

test('a refresh that completes after logout does not bring the session back', async () => {
  const { lib, wx, backend } = setup();
  const refresh = backend.routes[REFRESH];
  // The server rotates at once, but its answer reaches the phone only after the logout.
  wx.routes[REFRESH] = (req) => {
    const answer = refresh(req);
    return tick(20).then(() => answer);
  };
  storeSession(wx, backend);
  const refreshing = lib.refreshToken();
  await lib.logout();
  const data = await refreshing;
  assert.equal(data.access_token, 'access-2');
  assert.equal(wx.storage.size, 0);
  assert.equal(await lib.checkLoginStatus(), false);
});

test('logout posts with the bearer token, waits for the answer and clears local state', async () => {
  const { lib, wx, backend } = setup();
  const tokens = storeSession(wx, backend);
  const result = await lib.logout();
  assert.equal(result, undefined);
  const [req] = wx.requestsTo(LOGOUT);
  assert.equal(req.header.Authorization, 'Bearer ' + tokens.access_token);
  assert.equal(req.data, undefined);
  assert.equal(wx.storage.size, 0);
  assert.equal(await lib.checkLoginStatus(), false);
  assert.equal(lib.getLocalToken(), '');
  assert.equal(lib.getLocalUserInfo(), null);
});

test('logout({ all: true }) asks the server to end every session', async () => {
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  await lib.logout({ all: true });
  assert.deepEqual(wx.requestsTo(LOGOUT)[0].data, { all: true });
});

test('logout waits for the server answer, then clears local state', async () => {
  const { lib, wx, backend } = setup();
  let release;
  const held = new Promise((resolve) => (release = resolve));
  wx.routes[LOGOUT] = (req) => held.then(() => backend.routes[LOGOUT](req));
  const tokens = storeSession(wx, backend);
  let settled = false;
  const done = lib.logout().then(() => (settled = true));
  await tick(20);
  assert.equal(settled, false);
  assert.equal(wx.storage.get('access_token'), tokens.access_token);
  release();
  await done;
  assert.equal(wx.storage.size, 0);
});

test('logout clears local state and resolves even when the network fails', async () => {
  const { lib, wx, backend } = setup({ routes: { [LOGOUT]: () => ({ fail: 'request:fail timeout' }) } });
  storeSession(wx, backend);
  await lib.logout();
  assert.equal(wx.requestsTo(LOGOUT).length, 1);
  assert.equal(wx.storage.size, 0);
});

test('logout clears local state and resolves when the server answers an error', async () => {
  const { lib, wx, backend } = setup({ routes: { [LOGOUT]: () => failure(503, 'STORAGE_UNAVAILABLE') } });
  storeSession(wx, backend);
  await lib.logout();
  assert.equal(wx.storage.size, 0);
});

test('logout with nothing stored resolves without calling the server', async () => {
  const { lib, wx } = setup();
  await lib.logout();
  assert.equal(wx.calls.requests.length, 0);
});

test('checkLoginStatus returns a Promise of a boolean from local state only', async () => {
  const { lib, wx, backend } = setup();
  const before = lib.checkLoginStatus();
  assert.ok(before instanceof Promise);
  assert.equal(await before, false);
  storeSession(wx, backend);
  assert.equal(await lib.checkLoginStatus(), true);
  assert.equal(wx.calls.requests.length, 0);
  assert.equal(wx.calls.login, 0);
});

test('getLocalToken and getLocalUserInfo return "" and null when storage is empty or unreadable', () => {
  const { lib, wx } = setup();
  assert.equal(lib.getLocalToken(), '');
  assert.equal(lib.getLocalUserInfo(), null);
  wx.getStorageSync = () => {
    throw new Error('getStorageSync:fail');
  };
  assert.equal(lib.getLocalToken(), '');
  assert.equal(lib.getLocalUserInfo(), null);
});

test('updateProfile PATCHes the fields, resolves the profile and refreshes the stored user', async () => {
  const { lib, wx, backend } = setup();
  const tokens = storeSession(wx, backend);
  const profile = await lib.updateProfile({ nickname: '张三' });
  assert.equal(profile.nickname, '张三');
  const [req] = wx.requestsTo('PATCH /api/v1/user/profile');
  assert.deepEqual(req.data, { nickname: '张三' });
  assert.equal(req.header.Authorization, 'Bearer ' + tokens.access_token);
  const stored = lib.getLocalUserInfo();
  assert.equal(stored.nickname, '张三');
  assert.equal(stored.bio, '');
  assert.equal(stored.openid, 'oALICE');
});

test('updateProfile recovers from an expired token like any request', async () => {
  const { lib, wx, backend } = setup();
  const old = storeSession(wx, backend);
  backend.expire(old.access_token);
  const routes = wx.routes;
  const patch = routes['PATCH /api/v1/user/profile'];
  let first = true;
  routes['PATCH /api/v1/user/profile'] = (req) => {
    if (first) {
      first = false;
      return failure(401, 'TOKEN_EXPIRED');
    }
    return patch(req);
  };
  const profile = await lib.updateProfile({ bio: 'hi' });
  assert.equal(profile.id, 1);
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  assert.equal(wx.requestsTo('PATCH /api/v1/user/profile')[1].header.Authorization, 'Bearer access-2');
});

test('updateProfile that fails leaves the stored user untouched', async () => {
  const { lib, wx, backend } = setup({ routes: { 'PATCH /api/v1/user/profile': () => failure(400, 'CONTENT_REJECTED') } });
  storeSession(wx, backend);
  const before = lib.getLocalUserInfo();
  await assert.rejects(lib.updateProfile({ nickname: 'bad' }), { status: 400, reason: 'CONTENT_REJECTED' });
  assert.deepEqual(lib.getLocalUserInfo(), before);
});
