'use strict';
// The example login page, run with a fake Page() and the fake wx.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { setup, failure, storeSession } = require('./fake-wx.js');

const PAGE = path.resolve(__dirname, '../pages/login/login.js');
const PATCH = 'PATCH /api/v1/user/profile';
const LOGIN = 'POST /api/v1/auth/wx-login';

/** Loads the page module (after setup(), so it shares that fresh library) and returns a page instance. */
function loadPage() {
  let definition;
  globalThis.Page = (def) => {
    definition = def;
  };
  delete require.cache[PAGE];
  require(PAGE);
  const page = Object.assign({}, definition, { data: JSON.parse(JSON.stringify(definition.data)) });
  page.setData = function (patch) {
    Object.assign(this.data, patch);
  };
  return page;
}

function submit(page, nickname) {
  return page.onSubmit({ detail: { value: { nickname: nickname } } });
}

test('login with a nickname: loading, login, profile saved, then a success toast', async () => {
  const { wx, backend } = setup();
  const page = loadPage();
  page.onLoad();
  assert.equal(page.data.user, null);
  await submit(page, ' 张三 ');
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.deepEqual(wx.requestsTo(PATCH)[0].data, { nickname: '张三' });
  assert.equal(backend.nickname, '张三');
  assert.equal(page.data.user.nickname, '张三');
  assert.equal(page.data.loggingIn, false);
  assert.deepEqual(wx.calls.ui, ['showLoading', 'hideLoading', 'showToast']);
  assert.equal(wx.calls.toasts[0].title, '登录成功');
  assert.equal(wx.calls.toasts[0].icon, 'success');
  assert.equal(wx.storage.get('user_info').nickname, '张三');
});

test('login without a nickname skips the profile update', async () => {
  const { wx } = setup();
  const page = loadPage();
  await submit(page, '');
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(PATCH).length, 0);
  assert.equal(page.data.user.openid, 'oALICE');
});

test('a second tap while logging in is ignored', async () => {
  const { wx } = setup();
  const page = loadPage();
  await Promise.all([submit(page, ''), submit(page, '')]);
  assert.equal(wx.calls.login, 1);
  assert.equal(wx.calls.loading.length, 1);
});

test('a failed login shows the reason as a toast and leaves the form usable', async () => {
  const { wx } = setup({ loginImpl: () => ({ fail: 'login:fail' }) });
  const page = loadPage();
  await submit(page, '张三');
  assert.equal(page.data.user, null);
  assert.equal(page.data.loggingIn, false);
  assert.deepEqual(wx.calls.ui, ['showLoading', 'hideLoading', 'showToast']);
  assert.equal(wx.calls.toasts[0].title, '微信登录失败，请重试');
  assert.equal(wx.calls.toasts[0].icon, 'none');
  assert.equal(wx.requestsTo(PATCH).length, 0);
});

test('a nickname the server rejects: logged in anyway, and told why', async () => {
  const { wx } = setup({ routes: { [PATCH]: () => failure(400, 'CONTENT_REJECTED') } });
  const page = loadPage();
  await submit(page, 'bad');
  assert.equal(page.data.user.openid, 'oALICE');
  assert.equal(page.data.loggingIn, false);
  assert.equal(wx.calls.toasts[0].title, '昵称包含不当内容，请修改后再试');
  assert.equal(wx.storage.get('access_token'), 'access-1');
});

test('the chosen avatar is kept as a local preview and never sent as avatarUrl', async () => {
  const { wx, backend } = setup();
  const page = loadPage();
  page.onChooseAvatar({ detail: { avatarUrl: 'http://tmp/avatar.jpeg' } });
  assert.equal(page.data.avatarPreview, 'http://tmp/avatar.jpeg');
  await submit(page, '');
  assert.deepEqual(Object.keys(backend.lastLoginBody), ['code']);
  assert.equal(page.data.avatarPreview, 'http://tmp/avatar.jpeg');
  assert.equal(wx.requestsTo(PATCH).length, 0);
});

test('onLoad shows a stored login, and logout clears it', async () => {
  const { wx, backend } = setup();
  storeSession(wx, backend);
  const page = loadPage();
  page.onLoad();
  assert.equal(page.data.user.openid, 'oALICE');
  await page.onLogout();
  assert.equal(wx.requestsTo('POST /api/v1/auth/logout').length, 1);
  assert.equal(page.data.user, null);
  assert.equal(wx.storage.size, 0);
  assert.deepEqual(wx.calls.ui, ['showLoading', 'hideLoading', 'showToast']);
});
