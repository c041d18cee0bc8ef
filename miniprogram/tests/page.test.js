'use strict';
// The example login page, run with a fake Page() and the fake wx.

const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { setup, failure, storeSession, loadPage: loadPageAt } = require('./fake-wx.js');

const PAGE = path.resolve(__dirname, '../pages/login/login.js');
const PATCH = 'PATCH /api/v1/user/profile';
const LOGIN = 'POST /api/v1/auth/wx-login';
const AVATAR = 'POST /api/v1/user/avatar';

/** The login page (after setup(), so it shares that fresh library). */
function loadPage() {
  return loadPageAt(PAGE);
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

test('the chosen avatar is uploaded after login, never sent as avatarUrl', async () => {
  const { wx, backend } = setup();
  const page = loadPage();
  page.onChooseAvatar({ detail: { avatarUrl: 'http://tmp/avatar.jpeg' } });
  assert.equal(page.data.avatarPreview, 'http://tmp/avatar.jpeg');
  await submit(page, '张三');
  assert.deepEqual(Object.keys(backend.lastLoginBody), ['code']);
  const [upload] = wx.requestsTo(AVATAR);
  assert.equal(upload.filePath, 'http://tmp/avatar.jpeg');
  assert.equal(upload.name, 'file');
  assert.equal(upload.header.Authorization, 'Bearer access-1');
  // The preview now shows the server's copy, and the nickname was saved too.
  assert.equal(page.data.avatarPreview, 'https://cdn.test/avatars/1.jpg');
  assert.equal(page.data.user.avatar, 'https://cdn.test/avatars/1.jpg');
  assert.equal(page.data.user.nickname, '张三');
  assert.equal(wx.storage.get('user_info').avatar, 'https://cdn.test/avatars/1.jpg');
  assert.equal(wx.calls.toasts[0].title, '登录成功');
});

test('no avatar chosen: nothing is uploaded', async () => {
  const { wx } = setup();
  const page = loadPage();
  await submit(page, '张三');
  assert.equal(wx.requestsTo(AVATAR).length, 0);
});

test('an avatar the server rejects: the nickname is still saved, and the toast says it was the picture', async () => {
  const { wx, backend } = setup({ routes: { [AVATAR]: () => failure(400, 'CONTENT_REJECTED') } });
  const page = loadPage();
  page.onChooseAvatar({ detail: { avatarUrl: 'wxfile://tmp_1.gif' } });
  await submit(page, '张三');
  assert.equal(wx.requestsTo(AVATAR).length, 1);
  assert.equal(backend.nickname, '张三');
  assert.equal(page.data.user.nickname, '张三');
  assert.equal(page.data.loggingIn, false);
  assert.deepEqual(wx.calls.ui, ['showLoading', 'hideLoading', 'showToast']);
  assert.equal(wx.calls.toasts[0].title, '头像图片无法使用，请换一张（JPEG、PNG 或 WebP）');
});

test('a too large avatar gets its own message', async () => {
  const { wx } = setup({ routes: { [AVATAR]: () => failure(413, 'PAYLOAD_TOO_LARGE') } });
  const page = loadPage();
  page.onChooseAvatar({ detail: { avatarUrl: 'http://tmp/huge.jpeg' } });
  await submit(page, '');
  assert.equal(wx.calls.toasts[0].title, '头像图片太大，请换一张（最大 2 MB）');
  assert.equal(page.data.user.openid, 'oALICE');
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
