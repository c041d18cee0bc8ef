'use strict';
// uploadAvatar(): wx.uploadFile with the bearer token, the string envelope, errors and session recovery.

const test = require('node:test');
const assert = require('node:assert/strict');
const { setup, envelope, failure, storeSession } = require('./fake-wx.js');

const AVATAR = 'POST /api/v1/user/avatar';
const REFRESH = 'POST /api/v1/auth/refresh';
const LOGIN = 'POST /api/v1/auth/wx-login';
const TEMP = 'http://tmp/chosen-avatar.jpeg';

test('uploadAvatar sends the file as field "file" with the bearer token and stores the new avatar', async () => {
  const { lib, wx, backend } = setup({ config: { timeout: 4321 } });
  const tokens = storeSession(wx, backend);
  backend.nickname = '张三';
  wx.storage.set('user_info', { id: 1, openid: 'oALICE', nickname: '张三', avatar: '', created_at: 'then' });
  const profile = await lib.uploadAvatar(TEMP);
  assert.equal(profile.avatar, 'https://cdn.test/avatars/1.jpg');
  const [req] = wx.requestsTo(AVATAR);
  assert.equal(req.upload, true);
  assert.equal(req.url, 'https://api.test/api/v1/user/avatar');
  assert.equal(req.filePath, TEMP);
  assert.equal(req.name, 'file');
  assert.equal(req.header.Authorization, 'Bearer ' + tokens.access_token);
  assert.equal(req.timeout, 4321);
  // The stored user gets the new avatar and keeps what the answer does not change.
  assert.equal(lib.getLocalUserInfo().avatar, 'https://cdn.test/avatars/1.jpg');
  assert.equal(lib.getLocalUserInfo().nickname, '张三');
  assert.equal(lib.getLocalUserInfo().created_at, 'then');
});

test('the answer arrives as a string (as wx.uploadFile gives it) and is parsed', async () => {
  const { lib, wx, backend } = setup({
    routes: { [AVATAR]: () => ({ statusCode: 200, data: JSON.stringify(envelope({ avatar: 'https://x/y.png' }).data) }) },
  });
  storeSession(wx, backend);
  assert.deepEqual(await lib.uploadAvatar(TEMP), { avatar: 'https://x/y.png' });
});

test('an expired token is refreshed once and the upload retried with the new one', async () => {
  const { lib, wx, backend } = setup();
  const tokens = storeSession(wx, backend);
  backend.expire(tokens.access_token);
  const profile = await lib.uploadAvatar(TEMP);
  assert.equal(profile.avatar, 'https://cdn.test/avatars/1.jpg');
  assert.equal(wx.requestsTo(REFRESH).length, 1);
  const uploads = wx.requestsTo(AVATAR);
  assert.equal(uploads.length, 2);
  assert.equal(uploads[1].header.Authorization, 'Bearer ' + lib.getLocalToken());
  assert.notEqual(lib.getLocalToken(), tokens.access_token);
  assert.equal(uploads[1].filePath, TEMP);
});

test('a revoked session: local state cleared, one silent login, one retry', async () => {
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  backend.revokeAll();
  const profile = await lib.uploadAvatar(TEMP);
  assert.equal(profile.avatar, 'https://cdn.test/avatars/1.jpg');
  assert.equal(wx.requestsTo(LOGIN).length, 1);
  assert.equal(wx.requestsTo(AVATAR).length, 2);
  assert.equal(lib.getLocalUserInfo().avatar, 'https://cdn.test/avatars/1.jpg');
});

test('a second failure of the retried upload rejects', async () => {
  const { lib, wx, backend } = setup({ routes: { [AVATAR]: () => failure(401, 'SESSION_REVOKED') } });
  storeSession(wx, backend);
  await assert.rejects(lib.uploadAvatar(TEMP), { status: 401, reason: 'SESSION_REVOKED' });
  assert.equal(wx.requestsTo(AVATAR).length, 2);
  assert.equal(wx.requestsTo(LOGIN).length, 1);
});

test('a rejected image rejects at once, without retry, and leaves the stored user alone', async () => {
  const { lib, wx, backend } = setup({
    routes: { [AVATAR]: () => failure(400, 'CONTENT_REJECTED', '不支持的图片格式 (仅支持 JPEG, PNG, WebP)') },
  });
  storeSession(wx, backend);
  const before = lib.getLocalUserInfo();
  await assert.rejects(lib.uploadAvatar(TEMP), (err) => {
    assert.ok(err instanceof lib.AuthError);
    assert.equal(err.status, 400);
    assert.equal(err.reason, 'CONTENT_REJECTED');
    assert.equal(err.message, '不支持的图片格式 (仅支持 JPEG, PNG, WebP)');
    return true;
  });
  assert.equal(wx.requestsTo(AVATAR).length, 1);
  assert.deepEqual(lib.getLocalUserInfo(), before);
});

test('a too large image rejects PAYLOAD_TOO_LARGE', async () => {
  const { lib, wx, backend } = setup({ routes: { [AVATAR]: () => failure(413, 'PAYLOAD_TOO_LARGE') } });
  storeSession(wx, backend);
  await assert.rejects(lib.uploadAvatar(TEMP), { status: 413, reason: 'PAYLOAD_TOO_LARGE' });
});

test('uploadFile failures on the phone are TIMEOUT or NETWORK_ERROR with status 0', async () => {
  for (const [errMsg, reason] of [
    ['uploadFile:fail timeout', 'TIMEOUT'],
    ['uploadFile:fail url not in domain list', 'NETWORK_ERROR'],
  ]) {
    const { lib, wx, backend } = setup({ routes: { [AVATAR]: () => ({ fail: errMsg }) } });
    storeSession(wx, backend);
    await assert.rejects(lib.uploadAvatar(TEMP), { status: 0, reason: reason, message: errMsg });
  }
});

test('an answer that is not our envelope (a gateway page) is a NETWORK_ERROR with its status', async () => {
  const { lib, wx, backend } = setup({ routes: { [AVATAR]: () => ({ statusCode: 502, data: '<html>Bad Gateway</html>' }) } });
  storeSession(wx, backend);
  await assert.rejects(lib.uploadAvatar(TEMP), { status: 502, reason: 'NETWORK_ERROR' });
});

test('with no stored token the upload carries none and TOKEN_MISSING rejects without a login', async () => {
  const { lib, wx } = setup();
  await assert.rejects(lib.uploadAvatar(TEMP), { status: 401, reason: 'TOKEN_MISSING' });
  assert.equal('Authorization' in wx.requestsTo(AVATAR)[0].header, false);
  assert.equal(wx.calls.login, 0);
});

test('without a temp file path nothing is sent', async () => {
  const { lib, wx, backend } = setup();
  storeSession(wx, backend);
  for (const bad of ['', undefined, 42]) {
    await assert.rejects(lib.uploadAvatar(bad), { status: 0, reason: 'INVALID_REQUEST' });
  }
  assert.equal(wx.calls.requests.length, 0);
});
