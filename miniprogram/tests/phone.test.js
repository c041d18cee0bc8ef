'use strict';
// bindPhone(e) for <button open-type="getPhoneNumber">, wechatLogin({ phoneCode }), and the page's
// "手机号一键登录" button.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { setup, envelope, failure, storeSession, loadPage: loadPageAt } = require('./fake-wx.js');

const LOGIN = 'POST /api/v1/auth/wx-login';
const PHONE = 'POST /api/v1/auth/phone';
const REFRESH = 'POST /api/v1/auth/refresh';
const PAGE = path.resolve(__dirname, '../pages/login/login.js');
const BOUND = { phone_number: '13800138000', pure_phone_number: '13800138000', country_code: '86', masked: '138****8000' };

function tap(detail) {
  return { type: 'getphonenumber', detail: detail };
}

const OK_CODE = tap({ errMsg: 'getPhoneNumber:ok', code: 'phone-code-1' });

/** The fake backend, plus /auth/phone and wx-login's phoneCode as the contract answers them. */
function phoneSetup(options) {
  const opts = options || {};
  const env = setup({
    routes: {
      [PHONE]: (req) => {
        const s = env.backend.bearer(req);
        if (!s) return failure(401, 'TOKEN_MISSING');
        return opts.phone ? opts.phone(req) : envelope(BOUND);
      },
    },
  });
  const login = env.wx.routes[LOGIN];
  env.wx.routes[LOGIN] = (req) => {
    const res = login(req);
    if (req.data.phoneCode) {
      if (opts.phoneError) res.data.data.phone_error = opts.phoneError;
      else res.data.data.phone_masked = '138****8000';
    }
    return res;
  };
  return env;
}

test('logged in: the code goes to POST /auth/phone with the bearer, and the stored user gains phone_masked', async () => {
  const { lib, wx, backend } = phoneSetup();
  const tokens = storeSession(wx, backend);
  const phone = await lib.bindPhone(OK_CODE);
  assert.deepEqual(phone, BOUND);
  const [req] = wx.requestsTo(PHONE);
  assert.deepEqual(req.data, { code: 'phone-code-1' });
  assert.equal(req.header.Authorization, 'Bearer ' + tokens.access_token);
  assert.equal(wx.requestsTo(LOGIN).length, 0);
  assert.equal(wx.storage.get('user_info').phone_masked, '138****8000');
  assert.equal(wx.storage.get('user_info').openid, 'oALICE');
});

test('old base libraries: encryptedData and iv are sent instead of a code', async () => {
  const { lib, wx, backend } = phoneSetup();
  storeSession(wx, backend);
  await lib.bindPhone(tap({ errMsg: 'getPhoneNumber:ok', encryptedData: 'ZW5j', iv: 'aXY=' }));
  assert.deepEqual(wx.requestsTo(PHONE)[0].data, { encryptedData: 'ZW5j', iv: 'aXY=' });
});

test('a user who declines is PHONE_DENIED with status 0, and nothing is sent', async () => {
  const { lib, wx, backend } = phoneSetup();
  storeSession(wx, backend);
  for (const detail of [
    { errMsg: 'getPhoneNumber:fail user deny' },
    { errMsg: 'getPhoneNumber:fail:user deny' },
    { errMsg: 'getPhoneNumber:ok' },
    {},
  ]) {
    const err = await lib.bindPhone(tap(detail)).catch((e) => e);
    assert.ok(err instanceof lib.AuthError);
    assert.equal(err.status, 0);
    assert.equal(err.reason, 'PHONE_DENIED');
  }
  assert.equal((await lib.bindPhone(undefined).catch((e) => e)).reason, 'PHONE_DENIED');
  assert.equal(wx.calls.requests.length, 0);
});

test("the server's rejection is the rejection: PHONE_CODE_INVALID, DECRYPT_FAILED", async () => {
  for (const reason of ['PHONE_CODE_INVALID', 'DECRYPT_FAILED']) {
    const { lib, wx, backend } = phoneSetup({ phone: () => failure(400, reason) });
    storeSession(wx, backend);
    const err = await lib.bindPhone(OK_CODE).catch((e) => e);
    assert.ok(err instanceof lib.AuthError);
    assert.deepEqual([err.status, err.reason], [400, reason]);
    assert.equal(wx.storage.get('user_info').phone_masked, undefined);
  }
});

test('an expired access token is refreshed once and the binding retried', async () => {
  const { lib, wx, backend } = phoneSetup();
  const tokens = storeSession(wx, backend);
  backend.expire(tokens.access_token);
  let calls = 0;
  wx.routes[PHONE] = (req) => {
    calls += 1;
    return backend.bearer(req) === tokens.access_token ? failure(401, 'TOKEN_EXPIRED') : envelope(BOUND);
  };
  assert.deepEqual(await lib.bindPhone(OK_CODE), BOUND);
  assert.equal(calls, 2);
  assert.equal(wx.requestsTo(REFRESH).length, 1);
});

test('logged out: one tap logs in and binds in a single wx-login request', async () => {
  const { lib, wx } = phoneSetup();
  const result = await lib.bindPhone(OK_CODE);
  assert.equal(result.masked, '138****8000');
  assert.equal(result.isNewUser, true);
  assert.equal(result.user.openid, 'oALICE');
  const [req] = wx.requestsTo(LOGIN);
  assert.deepEqual(req.data, { code: 'code-1', phoneCode: 'phone-code-1' });
  assert.equal(wx.requestsTo(PHONE).length, 0);
  assert.equal(lib.getLocalToken(), 'access-1');
  assert.equal(wx.storage.get('user_info').phone_masked, '138****8000');
});

test('logged out, phone code rejected: logged in all the same, and bindPhone rejects with the reason', async () => {
  const { lib, wx } = phoneSetup({ phoneError: 'PHONE_CODE_INVALID' });
  const err = await lib.bindPhone(OK_CODE).catch((e) => e);
  assert.ok(err instanceof lib.AuthError);
  assert.deepEqual([err.status, err.reason], [400, 'PHONE_CODE_INVALID']);
  assert.equal(lib.getLocalToken(), 'access-1');
  assert.equal(wx.requestsTo(LOGIN).length, 1);
});

test('wechatLogin({ phoneCode }) reports phoneMasked or phoneError', async () => {
  let env = phoneSetup();
  let result = await env.lib.wechatLogin({ phoneCode: 'pc' });
  assert.equal(result.phoneMasked, '138****8000');
  assert.equal(result.phoneError, undefined);
  env = phoneSetup({ phoneError: 'PHONE_CODE_INVALID' });
  result = await env.lib.wechatLogin({ phoneCode: 'pc' });
  assert.equal(result.phoneError, 'PHONE_CODE_INVALID');
  assert.equal(result.phoneMasked, undefined);
  result = await env.lib.wechatLogin();
  assert.equal('phoneError' in result, false);
  assert.equal(env.backend.lastLoginBody.phoneCode, undefined);
});

test('logged out with legacy data: logs in first, then binds', async () => {
  const { lib, wx } = phoneSetup();
  await lib.bindPhone(tap({ errMsg: 'getPhoneNumber:ok', encryptedData: 'ZW5j', iv: 'aXY=' }));
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(LOGIN)[0].data.phoneCode, undefined);
  assert.equal(wx.requestsTo(PHONE)[0].header.Authorization, 'Bearer access-1');
});

function loadPage() {
  return loadPageAt(PAGE);
}

test('page: "手机号一键登录" logs in with the phone and shows the user', async () => {
  const { wx } = phoneSetup();
  const page = loadPage();
  page.onLoad();
  await page.onGetPhoneNumber(OK_CODE);
  assert.equal(page.data.user.phone_masked, '138****8000');
  assert.equal(page.data.loggingIn, false);
  assert.deepEqual(wx.calls.ui, ['showLoading', 'hideLoading', 'showToast']);
  assert.equal(wx.calls.toasts[0].title, '登录成功');
});

test('page: a declined or rejected phone shows why; a one-tap login that happened still shows the user', async () => {
  let env = phoneSetup();
  let page = loadPage();
  await page.onGetPhoneNumber(tap({ errMsg: 'getPhoneNumber:fail user deny' }));
  assert.equal(env.wx.calls.toasts[0].title, '未授权手机号');
  assert.equal(page.data.user, null);
  assert.equal(page.data.loggingIn, false);

  env = phoneSetup({ phoneError: 'PHONE_CODE_INVALID' });
  page = loadPage();
  await page.onGetPhoneNumber(OK_CODE);
  assert.equal(env.wx.calls.toasts[0].title, '手机号授权已失效，请重试');
  assert.equal(page.data.user.openid, 'oALICE');
});

test('page: logged in, the button binds the phone of this account', async () => {
  const { wx, backend } = phoneSetup();
  storeSession(wx, backend);
  const page = loadPage();
  page.onLoad();
  await page.onGetPhoneNumber(OK_CODE);
  assert.equal(wx.requestsTo(PHONE).length, 1);
  assert.equal(page.data.user.phone_masked, '138****8000');
  assert.equal(wx.calls.toasts[0].title, '绑定成功');
});
