'use strict';
// End to end: the library, with wx.request over real HTTP, against the local
// server (`python -m local.devserver`, as `make dev` runs it) and a fake WeChat
// (`python -m local.wechat_sim`) on 127.0.0.1. Skipped until both exist.

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const http = require('node:http');
const net = require('node:net');
const path = require('node:path');
const { spawn } = require('node:child_process');

const ROOT = path.resolve(__dirname, '../..');
const PYTHON = path.join(ROOT, '.venv/bin/python');
const LIBRARY = path.resolve(__dirname, '../utils/wechat-login.js');
const NEEDED = [PYTHON, path.join(ROOT, 'local/devserver.py'), path.join(ROOT, 'local/wechat_sim.py')];
const WAIT_MS = 20000;
const ACCESS_TOKEN_TTL_S = 4;

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const port = server.address().port;
      server.close(() => resolve(port));
    });
  });
}

/** One HTTP call; resolves { statusCode, body } with body parsed as JSON when it is JSON. */
function httpCall(url, options) {
  const opts = options || {};
  return new Promise((resolve, reject) => {
    const request = { method: opts.method || 'GET', headers: opts.headers || {}, timeout: opts.timeout || 5000 };
    const req = http.request(url, request, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let body = text;
        try {
          body = JSON.parse(text);
        } catch (e) {
          // Not JSON: hand the text over as wx.request does.
        }
        resolve({ statusCode: res.statusCode, body: body });
      });
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    if (opts.body !== undefined) req.write(opts.body);
    req.end();
  });
}

/**
 * A `wx` whose request goes over real HTTP the way wx.request does (JSON body,
 * data as query string on GET, errMsg "request:fail ..."), whose login hands out
 * queued codes, and which logs every request and its answer.
 */
function createHttpWx() {
  const storage = new Map();
  const wx = {
    storage: storage,
    codes: [],
    logins: 0,
    log: [],
    login(o) {
      wx.logins += 1;
      const code = wx.codes.shift();
      setImmediate(() => {
        if (code) o.success({ code: code, errMsg: 'login:ok' });
        else o.fail({ errMsg: 'login:fail no code queued' });
      });
    },
    request(o) {
      const method = (o.method || 'GET').toUpperCase();
      const url = new URL(o.url);
      const headers = Object.assign({ 'content-type': 'application/json' }, o.header);
      let body;
      if (o.data !== undefined) {
        if (method === 'GET') {
          for (const key of Object.keys(o.data)) url.searchParams.set(key, String(o.data[key]));
        } else {
          body = typeof o.data === 'string' ? o.data : JSON.stringify(o.data);
        }
      }
      const entry = { method: method, path: url.pathname, statusCode: 0, body: undefined };
      wx.log.push(entry);
      httpCall(url, { method: method, headers: headers, body: body, timeout: o.timeout }).then(
        (res) => {
          entry.statusCode = res.statusCode;
          entry.body = res.body;
          o.success({ statusCode: res.statusCode, data: res.body, header: {} });
        },
        (err) => o.fail({ errMsg: 'request:fail ' + (err.message === 'timeout' ? 'timeout' : err.message) })
      );
    },
    // wx.uploadFile over real HTTP: the file as multipart field `name`; `data` is handed over as a string.
    uploadFile(o) {
      const url = new URL(o.url);
      const boundary = '----wxupload' + Date.now().toString(16);
      const head =
        '--' + boundary + '\r\nContent-Disposition: form-data; name="' + o.name + '"; filename="' +
        path.basename(o.filePath) + '"\r\nContent-Type: application/octet-stream\r\n\r\n';
      const body = Buffer.concat([Buffer.from(head), fs.readFileSync(o.filePath), Buffer.from('\r\n--' + boundary + '--\r\n')]);
      const headers = Object.assign({}, o.header, { 'content-type': 'multipart/form-data; boundary=' + boundary });
      const entry = { method: 'POST', path: url.pathname, statusCode: 0, body: undefined };
      wx.log.push(entry);
      httpCall(url, { method: 'POST', headers: headers, body: body, timeout: o.timeout }).then(
        (res) => {
          entry.statusCode = res.statusCode;
          entry.body = res.body;
          const data = typeof res.body === 'string' ? res.body : JSON.stringify(res.body);
          o.success({ statusCode: res.statusCode, data: data, errMsg: 'uploadFile:ok' });
        },
        (err) => o.fail({ errMsg: 'uploadFile:fail ' + err.message })
      );
    },
    getStorageSync: (key) => (storage.has(key) ? storage.get(key) : ''),
    setStorageSync: (key, value) => storage.set(key, value),
    removeStorageSync: (key) => storage.delete(key),
    showToast() {},
    showLoading() {},
    hideLoading() {},
    requestsTo(route) {
      return wx.log.filter((e) => e.method + ' ' + e.path === route);
    },
  };
  return wx;
}

/** Starts a child in its own process group, so stopping it also stops anything it spawned. */
function startChild(name, args, env) {
  const child = spawn(PYTHON, args, { cwd: ROOT, env: env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  child.output = '';
  const keep = (chunk) => {
    child.output = (child.output + chunk.toString('utf8')).slice(-8000);
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  child.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  child.label = name;
  return child;
}

async function stopChild(child) {
  if (child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGTERM');
  } catch (e) {
    return; // already gone
  }
  const done = await Promise.race([child.exited.then(() => true), sleep(5000).then(() => false)]);
  if (!done) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch (e) {
      // already gone
    }
    await Promise.race([child.exited, sleep(2000)]);
  }
}

/** Polls `url` until `ready(res)`; fails after WAIT_MS or as soon as the child exits. */
async function waitFor(child, url, ready) {
  const deadline = Date.now() + WAIT_MS;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(child.label + ' exited early (' + child.exitCode + '):\n' + child.output);
    }
    try {
      const res = await httpCall(url, { timeout: 1000 });
      if (ready(res)) return;
    } catch (e) {
      // not listening yet
    }
    await sleep(200);
  }
  throw new Error(child.label + ' not ready within ' + WAIT_MS + ' ms at ' + url + ':\n' + child.output);
}

function jwtExp(token) {
  const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
  return JSON.parse(Buffer.from(payload, 'base64').toString('utf8')).exp;
}

test('e2e: the library against the local server and a fake WeChat', { timeout: 120000 }, async (t) => {
  const missing = NEEDED.filter((p) => !fs.existsSync(p));
  if (missing.length) {
    const names = missing.map((p) => path.relative(ROOT, p)).join(', ');
    t.skip('needs ' + names + ' (run `make venv`; the local server is part of the repo)');
    return;
  }

  const children = [];
  const stopAll = () => Promise.all(children.map(stopChild));
  // Safety net should the runner be interrupted between start and the finally below.
  const onExit = () => children.forEach((c) => {
    try {
      process.kill(-c.pid, 'SIGKILL');
    } catch (e) {
      // already gone
    }
  });
  process.once('exit', onExit);

  try {
    const simPort = await freePort();
    const apiPort = await freePort();
    const env = Object.assign({}, process.env, { PYTHONUNBUFFERED: '1' });
    const sim = startChild('local.wechat_sim', ['-m', 'local.wechat_sim', '--port', String(simPort)], env);
    children.push(sim);
    await waitFor(sim, 'http://127.0.0.1:' + simPort + '/', () => true);

    const api = startChild(
      'local.devserver',
      ['-m', 'local.devserver'],
      Object.assign({}, env, {
        STAGE: 'local',
        PORT: String(apiPort),
        WX_API_BASE: 'http://127.0.0.1:' + simPort,
        ACCESS_TOKEN_TTL: String(ACCESS_TOKEN_TTL_S),
        JWT_LEEWAY_S: '0',
      })
    );
    children.push(api);
    const baseURL = 'http://127.0.0.1:' + apiPort;
    await waitFor(api, baseURL + '/openapi.json', (res) => res.statusCode === 200);

    const wx = createHttpWx();
    globalThis.wx = wx;
    delete require.cache[LIBRARY];
    const lib = require(LIBRARY);
    lib.configure({ baseURL: baseURL, timeout: 10000, storagePrefix: 'e2e_' });

    // A call outside the library, to see exactly what the server answers.
    const raw = (method, route, token, data) =>
      httpCall(baseURL + route, {
        method: method,
        headers: Object.assign({ 'content-type': 'application/json' }, token ? { Authorization: 'Bearer ' + token } : {}),
        body: data === undefined ? undefined : JSON.stringify(data),
      });

    let first; // the session from the first login
    let second; // another session of alice, used after it expired

    await t.test('login stores tokens and resolves the user', async () => {
      wx.codes.push('alice.login1');
      const { user, isNewUser } = await lib.wechatLogin({ nickName: 'Alice' });
      assert.equal(isNewUser, true);
      assert.equal(typeof user.id, 'number');
      assert.ok(user.openid);
      assert.equal(user.nickname, 'Alice');
      assert.equal(user.session_key, undefined);
      first = { access: lib.getLocalToken(), refresh: wx.storage.get('e2e_refresh_token') };
      assert.ok(first.access && first.refresh);
      assert.deepEqual(lib.getLocalUserInfo(), user);
      assert.equal(await lib.checkLoginStatus(), true);
    });

    await t.test('an authenticated request answers the profile', async () => {
      const profile = await lib.request({ url: '/api/v1/user/profile' });
      assert.equal(profile.openid, lib.getLocalUserInfo().openid);
      assert.equal(profile.nickname, 'Alice');
      assert.equal(profile.bio, '');
      assert.equal(profile.phone_masked, '');
      const [call] = wx.requestsTo('GET /api/v1/user/profile');
      assert.equal(call.statusCode, 200);
      assert.match(call.body.timestamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    });

    await t.test('a known user logging in again keeps its id', async () => {
      const res = await raw('POST', '/api/v1/auth/wx-login', '', { code: 'alice.login2' });
      assert.equal(res.statusCode, 200, JSON.stringify(res.body));
      assert.equal(res.body.data.is_new_user, false);
      assert.equal(res.body.data.user.id, lib.getLocalUserInfo().id);
      second = { access: res.body.data.access_token, refresh: res.body.data.refresh_token };
    });

    await t.test('expired access token: one shared refresh, then each request retried', async () => {
      const exp = Math.max(jwtExp(first.access), jwtExp(second.access));
      assert.ok(exp - Date.now() / 1000 <= ACCESS_TOKEN_TTL_S + 1, 'ACCESS_TOKEN_TTL not honoured');
      await sleep(Math.max(0, (exp + 1) * 1000 - Date.now()));
      const expired = await raw('GET', '/api/v1/user/profile', first.access);
      assert.equal(expired.statusCode, 401);
      assert.equal(expired.body.reason, 'TOKEN_EXPIRED');

      wx.log.length = 0;
      const profiles = await Promise.all([1, 2, 3].map(() => lib.request({ url: '/api/v1/user/profile' })));
      for (const p of profiles) assert.equal(p.openid, lib.getLocalUserInfo().openid);
      assert.equal(wx.requestsTo('POST /api/v1/auth/refresh').length, 1);
      const calls = wx.requestsTo('GET /api/v1/user/profile');
      assert.equal(calls.length, 6);
      assert.deepEqual(calls.map((c) => c.statusCode).sort(), [200, 200, 200, 401, 401, 401]);
      assert.notEqual(lib.getLocalToken(), first.access);
      assert.notEqual(wx.storage.get('e2e_refresh_token'), first.refresh);
      assert.equal(wx.logins, 1);
    });

    await t.test('a session can be logged out with its expired token', async () => {
      const out = await raw('POST', '/api/v1/auth/logout', second.access);
      assert.equal(out.statusCode, 200, JSON.stringify(out.body));
      const again = await raw('POST', '/api/v1/auth/refresh', '', { refresh_token: second.refresh });
      assert.equal(again.statusCode, 401);
      assert.equal(again.body.reason, 'SESSION_REVOKED');
    });

    await t.test('a session revoked elsewhere: silent login and one retry', async () => {
      const before = lib.getLocalToken();
      const out = await raw('POST', '/api/v1/auth/logout', before);
      assert.equal(out.statusCode, 200, JSON.stringify(out.body));
      wx.log.length = 0;
      wx.codes.push('alice.relogin');
      const profile = await lib.request({ url: '/api/v1/user/profile' });
      assert.equal(profile.openid, lib.getLocalUserInfo().openid);
      assert.equal(wx.logins, 2);
      const calls = wx.requestsTo('GET /api/v1/user/profile');
      assert.deepEqual(calls.map((c) => c.statusCode), [401, 200]);
      assert.equal(calls[0].body.reason, 'SESSION_REVOKED');
      assert.notEqual(lib.getLocalToken(), before);
    });

    await t.test('updateProfile saves and refreshes the stored user', async () => {
      const profile = await lib.updateProfile({ nickname: 'Alice2', bio: 'cooks' });
      assert.equal(profile.nickname, 'Alice2');
      assert.equal(profile.bio, 'cooks');
      assert.equal(lib.getLocalUserInfo().nickname, 'Alice2');
    });

    await t.test('uploadAvatar stores the image and the server serves it back', async () => {
      const dir = fs.mkdtempSync(path.join(require('node:os').tmpdir(), 'wx-avatar-'));
      const png = path.join(dir, 'tmp_avatar.png');
      // A 1x1 PNG, as chooseAvatar would leave a temp file on the phone.
      fs.writeFileSync(png, Buffer.from('iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==', 'base64'));
      const profile = await lib.uploadAvatar(png);
      assert.ok(profile.avatar.startsWith(baseURL + '/local-avatars/avatars/'), profile.avatar);
      assert.equal(lib.getLocalUserInfo().avatar, profile.avatar);
      assert.equal((await httpCall(profile.avatar)).statusCode, 200);

      const html = path.join(dir, 'innocent.png');
      fs.writeFileSync(html, '<html><script>alert(1)</script></html>');
      await assert.rejects(lib.uploadAvatar(html), { status: 400, reason: 'CONTENT_REJECTED' });
      assert.equal(lib.getLocalUserInfo().avatar, profile.avatar);
      fs.rmSync(dir, { recursive: true, force: true });
    });

    await t.test('a nickname the content check rejects is CONTENT_REJECTED and not saved', async () => {
      await assert.rejects(lib.updateProfile({ nickname: '含违禁词的昵称' }), { status: 400, reason: 'CONTENT_REJECTED' });
      assert.equal((await lib.request({ url: '/api/v1/user/profile' })).nickname, 'Alice2');
    });

    await t.test('logout: local state cleared, and the old token is SESSION_REVOKED', async () => {
      const token = lib.getLocalToken();
      await lib.logout();
      assert.equal(wx.requestsTo('POST /api/v1/auth/logout').pop().statusCode, 200);
      assert.equal(lib.getLocalToken(), '');
      assert.equal(lib.getLocalUserInfo(), null);
      assert.equal(wx.storage.size, 0);
      const res = await raw('GET', '/api/v1/user/profile', token);
      assert.equal(res.statusCode, 401);
      assert.equal(res.body.reason, 'SESSION_REVOKED');
      // With nothing stored, a request goes out without a token.
      await assert.rejects(lib.request({ url: '/api/v1/user/profile' }), { status: 401, reason: 'TOKEN_MISSING' });
    });

    await t.test('logout({ all: true }) ends the sessions on other devices too', async () => {
      wx.codes.push('alice.phone');
      await lib.wechatLogin();
      const other = await raw('POST', '/api/v1/auth/wx-login', '', { code: 'alice.tablet' });
      assert.equal(other.statusCode, 200, JSON.stringify(other.body));
      await lib.logout({ all: true });
      assert.equal(wx.requestsTo('POST /api/v1/auth/logout').pop().statusCode, 200);
      assert.equal(wx.storage.size, 0);
      const res = await raw('GET', '/api/v1/user/profile', other.body.data.access_token);
      assert.equal(res.statusCode, 401);
      assert.equal(res.body.reason, 'SESSION_REVOKED');
    });

    await t.test('a code WeChat rejects surfaces as WECHAT_CODE_INVALID, not retried', async () => {
      const loginsBefore = wx.logins;
      wx.codes.push('fail.40029');
      await assert.rejects(lib.wechatLogin(), (err) => {
        assert.ok(err instanceof lib.AuthError);
        assert.equal(err.status, 401);
        assert.equal(err.reason, 'WECHAT_CODE_INVALID');
        assert.match(err.message, /40029/);
        return true;
      });
      assert.equal(wx.logins, loginsBefore + 1);
      assert.equal(wx.storage.size, 0);
    });
  } finally {
    await stopAll();
    process.removeListener('exit', onExit);
  }
});
