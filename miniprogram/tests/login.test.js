'use strict';
// wechatLogin / ensureLogin: single flight, storage, failures of wx.login and of the code.

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, failure, storeSession } = require('./fake-wx.js');

const LOGIN = 'POST /api/v1/auth/wx-login';

test('wechatLogin stores the tokens and user and resolves { user, isNewUser }', async () => {
  const { lib, wx } = setup();
  const result = await lib.wechatLogin();
  assert.equal(result.isNewUser, true);
  assert.equal(result.user.openid, 'oALICE');
  assert.equal(wx.storage.get('access_token'), 'access-1');
  assert.equal(wx.storage.get('refresh_token'), 'refresh-1');
  assert.deepEqual(wx.storage.get('user_info'), result.user);
  assert.equal(lib.getLocalToken(), 'access-1');
  assert.deepEqual(lib.getLocalUserInfo(), result.user);
  assert.equal(await lib.checkLoginStatus(), true);
  const [req] = wx.requestsTo(LOGIN);
  assert.equal(req.url, 'https://api.test/api/v1/auth/wx-login');
  assert.deepEqual(req.data, { code: 'code-1' });
  assert.equal(req.header.Authorization, undefined);
});

test('concurrent wechatLogin calls share one wx.login and one request; the first nickName wins', async () => {
  const { lib, wx, backend } = setup();
  const results = await Promise.all([
    lib.wechatLogin({ nickName: '张三' }),
    lib.wechatLogin({ nickName: '李四' }),
    lib.wechatLogin(),
    lib.wechatLogin({ nickName: '王五' }),
    lib.wechatLogin({ nickName: '赵六' }),
  ]);
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(backend.lastLoginBody.nickName, '张三');
  for (const r of results) assert.equal(r, results[0]);
  assert.equal(results[0].user.nickname, '张三');
});

test('a login after the previous one settled starts a new one', async () => {
  const { lib, wx } = setup();
  await lib.wechatLogin();
  await lib.wechatLogin();
  assert.equal(wx.calls.login, 2);
  assert.equal(wx.requestsTo(LOGIN).length, 2);
  assert.equal(lib.getLocalToken(), 'access-2');
});

test('wechatLogin sends a trimmed nickName and an https avatarUrl, but never a local temp path', async () => {
  const { lib, backend } = setup();
  await lib.wechatLogin({ nickName: '  张三 ', avatarUrl: 'https://cdn.example.com/a.png' });
  assert.deepEqual(backend.lastLoginBody, { code: 'code-1', nickName: '张三', avatarUrl: 'https://cdn.example.com/a.png' });
  await lib.wechatLogin({ nickName: '   ', avatarUrl: 'http://tmp/abc.jpeg' });
  assert.deepEqual(backend.lastLoginBody, { code: 'code-2' });
});

test('wx.login failing rejects WX_LOGIN_FAILED with status 0 and sends nothing', async () => {
  const { lib, wx } = setup({ loginImpl: () => ({ fail: 'login:fail auth deny' }) });
  await assert.rejects(lib.wechatLogin(), (err) => {
    assert.ok(err instanceof lib.AuthError);
    assert.ok(err instanceof Error);
    assert.equal(err.name, 'AuthError');
    assert.equal(err.status, 0);
    assert.equal(err.reason, 'WX_LOGIN_FAILED');
    assert.match(err.message, /auth deny/);
    return true;
  });
  assert.equal(wx.calls.requests.length, 0);
  assert.equal(await lib.checkLoginStatus(), false);
});

test('wx.login succeeding without a code also rejects WX_LOGIN_FAILED', async () => {
  const { lib, wx } = setup({ loginImpl: () => ({ code: '' }) });
  await assert.rejects(lib.wechatLogin(), { status: 0, reason: 'WX_LOGIN_FAILED' });
  assert.equal(wx.calls.requests.length, 0);
});

test('a code WeChat rejects surfaces the server reason and is not retried', async () => {
  const message = '微信登录失败: invalid code (错误码: 40029)';
  const { lib, wx } = setup({ routes: { [LOGIN]: () => failure(401, 'WECHAT_CODE_INVALID', message) } });
  const calls = [lib.wechatLogin(), lib.wechatLogin()];
  for (const p of calls) {
    await assert.rejects(p, (err) => {
      assert.ok(err instanceof lib.AuthError);
      assert.equal(err.status, 401);
      assert.equal(err.reason, 'WECHAT_CODE_INVALID');
      assert.equal(err.message, message);
      return true;
    });
  }
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.storage.size, 0);
});

test('a failed login leaves no half-written state and the next call tries again', async () => {
  let answer = () => failure(503, 'WECHAT_UNAVAILABLE');
  const { lib, wx, backend } = setup({ routes: { [LOGIN]: (req) => answer(req) } });
  await assert.rejects(lib.wechatLogin(), { status: 503, reason: 'WECHAT_UNAVAILABLE' });
  assert.equal(wx.storage.size, 0);
  answer = backend.routes[LOGIN];
  const { user } = await lib.wechatLogin();
  assert.equal(user.openid, 'oALICE');
  assert.equal(wx.calls.login, 2);
});

test('ensureLogin resolves the stored user without any network call', async () => {
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  const user = await lib.ensureLogin();
  assert.equal(user.openid, 'oALICE');
  assert.equal(wx.calls.login, 0);
  assert.equal(wx.calls.requests.length, 0);
});

test('concurrent ensureLogin calls with nothing stored share one login', async () => {
  const { lib, wx } = setup();
  const users = await Promise.all([lib.ensureLogin(), lib.ensureLogin(), lib.ensureLogin(), lib.wechatLogin()]);
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(users[0].openid, 'oALICE');
  assert.equal(users[1], users[0]);
  assert.equal(users[2], users[0]);
  assert.equal(users[3].user, users[0]);
});

test('storagePrefix is put before every storage key, and unprefixed keys are ignored', async () => {
  const { lib, wx } = setup({ config: { storagePrefix: 'shopA_' } });
  wx.storage.set('access_token', 'someone-elses');
  assert.equal(lib.getLocalToken(), '');
  await lib.wechatLogin();
  assert.equal(wx.storage.get('shopA_access_token'), 'access-1');
  assert.equal(wx.storage.get('shopA_refresh_token'), 'refresh-1');
  assert.equal(wx.storage.get('shopA_user_info').openid, 'oALICE');
  assert.equal(wx.storage.get('access_token'), 'someone-elses');
  await lib.logout();
  assert.equal(wx.storage.has('shopA_access_token'), false);
  assert.equal(wx.storage.has('shopA_user_info'), false);
  assert.equal(wx.storage.get('access_token'), 'someone-elses');
});

test('configure needs a baseURL and strips a trailing slash', async () => {
  const { lib, wx } = setup();
  assert.throws(() => lib.configure({}), TypeError);
  lib.configure({ baseURL: 'https://api.other.test/' });
  await lib.wechatLogin();
  assert.equal(wx.calls.requests[0].url, 'https://api.other.test/api/v1/auth/wx-login');
});
