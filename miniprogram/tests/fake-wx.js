'use strict';
// Test helpers (not a test file itself: the runner only picks up *.test.js).
//
// installFakeWx() puts a fake `wx` on globalThis whose server side is a set of
// route handlers, and returns a fresh copy of the library so that no state
// (single-flight promises, configuration) leaks from one test to the next.

const path = require('node:path');

const LIBRARY = path.resolve(__dirname, '../utils/wechat-login.js');
const BASE_URL = 'https://api.test';

function envelope(data) {
  return { statusCode: 200, data: { code: 200, message: 'success', data: data, timestamp: '2026-01-01T12:00:00.000Z' } };
}

function failure(status, reason, message) {
  return {
    statusCode: status,
    data: {
      code: status,
      message: message || reason,
      error: 'Error',
      reason: reason,
      timestamp: '2026-01-01T12:00:00.000Z',
    },
  };
}

function tick(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms || 0));
}

/**
 * A fake of the parts of `wx` the library and the login page use.
 *
 * routes: { "POST /api/v1/auth/wx-login": (req) => response, ... } where a
 * response is envelope(...)/failure(...)/{ fail: "request:fail ..." } or a
 * Promise of one. Unrouted calls answer 404 NOT_FOUND.
 */
function createFakeWx(options) {
  const opts = options || {};
  const storage = new Map();
  // ui: the order of showLoading / hideLoading / showToast calls, as they would appear on screen.
  const calls = { login: 0, requests: [], toasts: [], loading: [], ui: [] };
  let codeCounter = 0;

  // One routed call (wx.request or wx.uploadFile): recorded, answered by its route after `delay`;
  // `success` shapes a routed answer into what that API hands its success callback.
  function route(o, extra, success) {
    const url = new URL(o.url);
    const req = Object.assign(
      { url: o.url, origin: url.origin, path: url.pathname, header: o.header || {}, timeout: o.timeout },
      extra
    );
    calls.requests.push(req);
    const handler = fake.routes[req.method + ' ' + req.path];
    const answer = handler ? handler(req) : failure(404, 'NOT_FOUND');
    Promise.resolve(answer).then((res) => {
      setTimeout(() => {
        if (res.fail) o.fail({ errMsg: res.fail });
        else o.success(success(res));
      }, fake.delay);
    });
  }

  const fake = {
    routes: Object.assign({}, opts.routes),
    storage: storage,
    calls: calls,
    // wx.login behaviour: returns { code } or { fail: errMsg }.
    loginImpl: opts.loginImpl || (() => ({ code: 'code-' + ++codeCounter })),
    delay: opts.delay || 0,

    requestsTo(route) {
      return calls.requests.filter((r) => r.method + ' ' + r.path === route);
    },

    login(o) {
      calls.login += 1;
      const answer = fake.loginImpl();
      setTimeout(() => {
        if (answer.fail) o.fail({ errMsg: answer.fail });
        else o.success({ code: answer.code, errMsg: 'login:ok' });
      }, fake.delay);
    },

    request(o) {
      route(o, { method: o.method || 'GET', data: o.data }, (res) => ({
        statusCode: res.statusCode,
        data: res.data,
        header: {},
      }));
    },

    // wx.uploadFile: routed like a POST; the answer's `data` reaches the page as a string, as on a phone.
    uploadFile(o) {
      const extra = { method: 'POST', filePath: o.filePath, name: o.name, formData: o.formData, upload: true };
      route(o, extra, (res) => ({
        statusCode: res.statusCode,
        data: typeof res.data === 'string' ? res.data : JSON.stringify(res.data),
        errMsg: 'uploadFile:ok',
      }));
    },

    getStorageSync(key) {
      return storage.has(key) ? storage.get(key) : '';
    },
    setStorageSync(key, value) {
      storage.set(key, value);
    },
    removeStorageSync(key) {
      storage.delete(key);
    },
    showToast(o) {
      calls.toasts.push(o);
      calls.ui.push('showToast');
    },
    showLoading(o) {
      calls.loading.push(o);
      calls.ui.push('showLoading');
    },
    hideLoading() {
      calls.ui.push('hideLoading');
    },
  };
  return fake;
}

/**
 * A small in-memory backend following the contract: wx-login issues tokens,
 * refresh rotates them, logout revokes, the profile needs a live token.
 * Tests override single routes to inject failures.
 */
function createBackend() {
  let n = 0;
  const sessions = new Map(); // access token -> { live, expired, refresh }
  const backend = {
    nickname: '',
    avatar: '',
    uploads: 0,
    logins: 0,
    lastLoginBody: null,
    issue() {
      n += 1;
      const access = 'access-' + n;
      const refresh = 'refresh-' + n;
      sessions.set(access, { live: true, expired: false, refresh: refresh });
      return {
        access_token: access,
        token_type: 'Bearer',
        expires_in: 604800,
        refresh_token: refresh,
        refresh_expires_in: 2592000,
      };
    },
    /** Makes an access token answer TOKEN_EXPIRED from now on. */
    expire(access) {
      sessions.get(access).expired = true;
    },
    revokeAll() {
      for (const s of sessions.values()) s.live = false;
    },
    bearer(req) {
      const h = req.header.Authorization || '';
      return h.indexOf('Bearer ') === 0 ? h.slice(7) : '';
    },
    routes: {
      'POST /api/v1/auth/wx-login': (req) => {
        backend.logins += 1;
        backend.lastLoginBody = req.data;
        if (req.data.nickName) backend.nickname = req.data.nickName;
        const tokens = backend.issue();
        return envelope(
          Object.assign(tokens, {
            is_new_user: backend.logins === 1,
            user: {
              id: 1,
              openid: 'oALICE',
              nickname: backend.nickname,
              avatar: backend.avatar,
              created_at: '2026-01-01T12:00:00.000Z',
            },
          })
        );
      },
      'POST /api/v1/auth/refresh': (req) => {
        for (const s of sessions.values()) {
          if (s.refresh === req.data.refresh_token && s.live) {
            s.live = false;
            const tokens = backend.issue();
            return envelope(tokens);
          }
        }
        return failure(401, 'REFRESH_TOKEN_INVALID');
      },
      'POST /api/v1/auth/logout': (req) => {
        const s = sessions.get(backend.bearer(req));
        if (!s) return failure(401, 'TOKEN_INVALID');
        if (req.data && req.data.all) backend.revokeAll();
        s.live = false;
        return envelope({ message: '退出成功' });
      },
      'GET /api/v1/user/profile': (req) => {
        const token = backend.bearer(req);
        if (!token) return failure(401, 'TOKEN_MISSING');
        const s = sessions.get(token);
        if (!s) return failure(401, 'TOKEN_INVALID');
        if (s.expired) return failure(401, 'TOKEN_EXPIRED');
        if (!s.live) return failure(401, 'SESSION_REVOKED');
        return envelope({ id: 1, openid: 'oALICE', nickname: backend.nickname, token: token });
      },
      'POST /api/v1/user/avatar': (req) => {
        const token = backend.bearer(req);
        if (!token) return failure(401, 'TOKEN_MISSING');
        const s = sessions.get(token);
        if (!s) return failure(401, 'TOKEN_INVALID');
        if (s.expired) return failure(401, 'TOKEN_EXPIRED');
        if (!s.live) return failure(401, 'SESSION_REVOKED');
        if (!req.upload || req.name !== 'file' || !req.filePath) return failure(400, 'INVALID_REQUEST');
        backend.uploads += 1;
        backend.avatar = 'https://cdn.test/avatars/' + backend.uploads + '.jpg';
        return envelope({ id: 1, openid: 'oALICE', nickname: backend.nickname, avatar: backend.avatar, bio: '' });
      },
      'PATCH /api/v1/user/profile': (req) => {
        const s = sessions.get(backend.bearer(req));
        if (!s || !s.live) return failure(401, 'SESSION_REVOKED');
        if (req.data.nickname) backend.nickname = req.data.nickname;
        return envelope({ id: 1, openid: 'oALICE', nickname: backend.nickname, avatar: backend.avatar, bio: '' });
      },
    },
  };
  return backend;
}

/**
 * Installs a fresh fake `wx` (backed by createBackend() unless routes are given)
 * and loads a fresh copy of the library, configured with BASE_URL.
 */
function setup(options) {
  const opts = options || {};
  const backend = createBackend();
  const routes = Object.assign({}, backend.routes, opts.routes);
  const wx = createFakeWx({ routes: routes, loginImpl: opts.loginImpl, delay: opts.delay });
  globalThis.wx = wx;
  delete require.cache[LIBRARY];
  const lib = require(LIBRARY);
  lib.configure(Object.assign({ baseURL: BASE_URL }, opts.config));
  return { lib, wx, backend };
}

/** Stores a session the backend knows, as if an earlier login had happened; returns its tokens. */
function storeSession(wx, backend, prefix) {
  const p = prefix || '';
  const tokens = backend.issue();
  wx.storage.set(p + 'access_token', tokens.access_token);
  wx.storage.set(p + 'refresh_token', tokens.refresh_token);
  wx.storage.set(p + 'user_info', { id: 1, openid: 'oALICE', nickname: '' });
  return tokens;
}

/**
 * Loads a page module with a fake Page() (after setup(), so it shares that fresh library) and
 * returns a page instance whose setData merges into `data`.
 */
function loadPage(pagePath) {
  let definition;
  globalThis.Page = (def) => {
    definition = def;
  };
  delete require.cache[pagePath];
  require(pagePath);
  const page = Object.assign({}, definition, { data: JSON.parse(JSON.stringify(definition.data)) });
  page.setData = function (patch) {
    Object.assign(this.data, patch);
  };
  return page;
}

module.exports = { LIBRARY, BASE_URL, envelope, failure, tick, createFakeWx, createBackend, setup, storeSession, loadPage };
