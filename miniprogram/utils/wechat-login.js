/**
 * WeChat mini-program login client for the wx-login backend.
 *
 * Plain CommonJS, no dependencies, ES2017 at most, so it runs on every base
 * library without the DevTools "enhanced compile" option.
 *
 *   const auth = require('./utils/wechat-login.js');
 *   auth.configure({ baseURL: 'https://api.example.com' });
 *   auth.ensureLogin().then(() => auth.request({ url: '/api/v1/user/profile' }));
 *
 * Every asynchronous function returns a Promise; every rejection it produces
 * is an AuthError with `status`, `reason` and `message`.
 */
'use strict';

const API = '/api/v1';

const config = {
  baseURL: '',
  timeout: 10000,
  storagePrefix: '',
};

// Single-flight promises: while one is pending, every caller shares it.
let loginInFlight = null;
let refreshInFlight = null;

// Reasons after which the session is gone for good: only a new login helps.
const SESSION_GONE = ['SESSION_REVOKED', 'REFRESH_TOKEN_INVALID', 'REFRESH_TOKEN_REUSED'];

/**
 * The error every rejection of this library carries.
 * Written as a plain constructor rather than `class extends Error` because
 * the DevTools ES5 transpiler breaks `instanceof` on subclassed built-ins.
 *
 * @param {number} status HTTP status, or 0 when the failure happened on the phone.
 * @param {string} reason The server's `reason`, or WX_LOGIN_FAILED / NETWORK_ERROR / TIMEOUT.
 * @param {string} message Human-readable text (never branch on it).
 */
function AuthError(status, reason, message) {
  if (!(this instanceof AuthError)) return new AuthError(status, reason, message);
  this.name = 'AuthError';
  this.status = status;
  this.reason = reason;
  this.message = message || reason;
  if (typeof Error.captureStackTrace === 'function') {
    Error.captureStackTrace(this, AuthError);
  } else {
    this.stack = new Error(this.message).stack;
  }
}
AuthError.prototype = Object.create(Error.prototype);
AuthError.prototype.constructor = AuthError;

// ---------------------------------------------------------------------------
// Local state
// ---------------------------------------------------------------------------

function storageKey(name) {
  return config.storagePrefix + name;
}

function readStorage(name) {
  try {
    return wx.getStorageSync(storageKey(name));
  } catch (e) {
    // A storage failure must not break the app: treat it as "nothing stored".
    return '';
  }
}

function writeStorage(name, value) {
  try {
    wx.setStorageSync(storageKey(name), value);
  } catch (e) {
    // Storage full or unavailable: the in-memory answer still reaches the caller.
  }
}

function removeStorage(name) {
  try {
    wx.removeStorageSync(storageKey(name));
  } catch (e) {
    // Nothing more we can do; a stale key is overwritten by the next login.
  }
}

function clearLocalState() {
  removeStorage('access_token');
  removeStorage('refresh_token');
  removeStorage('user_info');
}

function getRefreshToken() {
  const token = readStorage('refresh_token');
  return typeof token === 'string' ? token : '';
}

// ---------------------------------------------------------------------------
// Transport
// ---------------------------------------------------------------------------

/**
 * Turns a raw HTTP answer into the envelope's `data`, or throws an AuthError.
 * Shared by wx.request and wx.uploadFile, whose `data` is a string.
 */
function parseResponse(statusCode, body) {
  if (typeof body === 'string') {
    try {
      body = JSON.parse(body);
    } catch (e) {
      body = null;
    }
  }
  const isEnvelope = body !== null && typeof body === 'object' && typeof body.code === 'number';
  if (!isEnvelope) {
    // Not our API's answer (a gateway error page, a captive portal): the
    // path to the server failed, so it is reported as a network error.
    throw new AuthError(statusCode, 'NETWORK_ERROR', 'unexpected response (HTTP ' + statusCode + ')');
  }
  if (statusCode === 200 && body.code === 200) return body.data;
  throw new AuthError(statusCode, body.reason || 'NETWORK_ERROR', body.message);
}

function wxFailure(err) {
  const errMsg = (err && err.errMsg) || 'request:fail';
  const reason = errMsg.indexOf('timeout') !== -1 ? 'TIMEOUT' : 'NETWORK_ERROR';
  return new AuthError(0, reason, errMsg);
}

/**
 * One HTTP call to the API, no retries: resolves the envelope's `data`.
 *
 * @param {{path: string, method?: string, data?: *, header?: Object, token?: string}} call
 *   `path` is appended to baseURL; `token`, when non-empty, is sent as a bearer.
 */
function callApi(call) {
  return new Promise(function (resolve, reject) {
    if (!config.baseURL) {
      throw new TypeError('wechat-login: call configure({ baseURL }) first');
    }
    const header = Object.assign({}, call.header);
    if (call.token) header.Authorization = 'Bearer ' + call.token;
    const options = Object.assign(
      {
        url: config.baseURL + call.path,
        method: call.method || 'GET',
        header: header,
        timeout: config.timeout,
      },
      settleWith(resolve, reject)
    );
    if (call.data !== undefined) options.data = call.data;
    wx.request(options);
  });
}

/**
 * The success/fail callbacks of a wx.request or wx.uploadFile that settle a Promise with the
 * envelope's `data`, or an AuthError.
 */
function settleWith(resolve, reject) {
  return {
    success: function (res) {
      try {
        resolve(parseResponse(res.statusCode, res.data));
      } catch (err) {
        reject(err);
      }
    },
    fail: function (err) {
      reject(wxFailure(err));
    },
  };
}

/**
 * One wx.uploadFile to the API, no retries: resolves the envelope's `data`.
 * Its answer's `data` is the body as a string; parseResponse decodes it.
 *
 * @param {{path: string, filePath: string, name: string, token?: string}} call
 */
function uploadToApi(call) {
  return new Promise(function (resolve, reject) {
    if (!config.baseURL) {
      throw new TypeError('wechat-login: call configure({ baseURL }) first');
    }
    const header = {};
    if (call.token) header.Authorization = 'Bearer ' + call.token;
    wx.uploadFile(
      Object.assign(
        {
          url: config.baseURL + call.path,
          filePath: call.filePath,
          name: call.name,
          header: header,
          timeout: config.timeout,
        },
        settleWith(resolve, reject)
      )
    );
  });
}

// ---------------------------------------------------------------------------
// Login
// ---------------------------------------------------------------------------

function wxLoginCode() {
  return new Promise(function (resolve, reject) {
    wx.login({
      success: function (res) {
        if (res && res.code) resolve(res.code);
        else reject(new AuthError(0, 'WX_LOGIN_FAILED', (res && res.errMsg) || 'wx.login returned no code'));
      },
      fail: function (err) {
        reject(new AuthError(0, 'WX_LOGIN_FAILED', (err && err.errMsg) || 'wx.login:fail'));
      },
    });
  });
}

function loginBody(code, opts) {
  const body = { code: code };
  const nickName = typeof opts.nickName === 'string' ? opts.nickName.trim() : '';
  if (nickName) body.nickName = nickName;
  // The server keeps only https avatars; a chooseAvatar temp path
  // (http://tmp/..., wxfile://...) would fail the whole login, so it is left out.
  if (typeof opts.avatarUrl === 'string' && opts.avatarUrl.indexOf('https://') === 0) {
    body.avatarUrl = opts.avatarUrl;
  }
  if (typeof opts.phoneCode === 'string' && opts.phoneCode) body.phoneCode = opts.phoneCode;
  return body;
}

function doLogin(opts) {
  return wxLoginCode()
    .then(function (code) {
      // No retry here: a login code works once, so a rejected code stays rejected.
      return callApi({ path: API + '/auth/wx-login', method: 'POST', data: loginBody(code, opts) });
    })
    .then(function (data) {
      writeStorage('access_token', data.access_token);
      writeStorage('refresh_token', data.refresh_token);
      const user = data.phone_masked ? Object.assign({}, data.user, { phone_masked: data.phone_masked }) : data.user;
      writeStorage('user_info', user);
      const result = { user: user, isNewUser: !!data.is_new_user };
      // Only with opts.phoneCode: the phone was bound (masked number) or why it was not.
      if (data.phone_masked) result.phoneMasked = data.phone_masked;
      if (data.phone_error) result.phoneError = data.phone_error;
      return result;
    });
}

/**
 * Logs in with wx.login() and POST /api/v1/auth/wx-login, and stores the tokens and user.
 * Concurrent calls share one login; the first call's nickName/avatarUrl are the ones sent.
 *
 * With opts.phoneCode (e.detail.code of a getPhoneNumber button) the same request binds the
 * phone: the result then carries phoneMasked ("138****8000"), or phoneError (the server's
 * reason, e.g. PHONE_CODE_INVALID) when the login succeeded but the binding did not.
 *
 * @param {{nickName?: string, avatarUrl?: string, phoneCode?: string}} [opts]
 * @returns {Promise<{user: Object, isNewUser: boolean, phoneMasked?: string, phoneError?: string}>}
 */
function wechatLogin(opts) {
  if (!loginInFlight) {
    loginInFlight = doLogin(opts || {}).then(
      function (result) {
        loginInFlight = null;
        return result;
      },
      function (err) {
        loginInFlight = null;
        throw err;
      }
    );
  }
  return loginInFlight;
}

/**
 * Resolves the stored user, or logs in silently (wx.login needs no tap) when
 * nothing is stored. Concurrent calls share one login.
 *
 * @returns {Promise<Object>} the user
 */
function ensureLogin() {
  const user = getLocalUserInfo();
  if (getLocalToken() && user) return Promise.resolve(user);
  return wechatLogin().then(function (result) {
    return result.user;
  });
}

// ---------------------------------------------------------------------------
// Refresh and recovery
// ---------------------------------------------------------------------------

function doRefresh() {
  const sent = getRefreshToken();
  if (!sent) {
    // Nothing to rotate: answered locally the way the server answers an unknown token.
    clearLocalState();
    return Promise.reject(new AuthError(0, 'REFRESH_TOKEN_INVALID', 'no refresh token stored'));
  }
  return callApi({ path: API + '/auth/refresh', method: 'POST', data: { refresh_token: sent } }).then(
    function (data) {
      // A logout or a new login while this refresh was in flight wins: don't bring the old session back.
      if (getRefreshToken() === sent) {
        writeStorage('access_token', data.access_token);
        if (data.refresh_token) writeStorage('refresh_token', data.refresh_token);
      }
      return data;
    },
    function (err) {
      // Only forget the session we tried to refresh, not one a parallel login just stored.
      if (SESSION_GONE.indexOf(err.reason) !== -1 && getRefreshToken() === sent) clearLocalState();
      throw err;
    }
  );
}

/**
 * Rotates the refresh token (POST /api/v1/auth/refresh) and stores the new tokens.
 * Concurrent calls share one refresh. On REFRESH_TOKEN_* or SESSION_REVOKED the
 * local state is cleared and the promise rejects.
 *
 * @returns {Promise<Object>} the server's token data
 */
function refreshToken() {
  if (!refreshInFlight) {
    refreshInFlight = doRefresh().then(
      function (data) {
        refreshInFlight = null;
        return data;
      },
      function (err) {
        refreshInFlight = null;
        throw err;
      }
    );
  }
  return refreshInFlight;
}

// After a failure with `usedToken`, has someone else already stored a new token?
// Then the fix (refresh or login) already happened and we only need to retry.
function replacedSince(usedToken) {
  const current = getLocalToken();
  return current !== '' && current !== usedToken;
}

function loginAgain(usedToken) {
  if (replacedSince(usedToken)) return Promise.resolve();
  clearLocalState();
  return wechatLogin();
}

/**
 * Runs `send(token)` with the stored token and recovers once from an expired
 * or revoked session: TOKEN_EXPIRED -> one shared refresh; SESSION_REVOKED or a
 * dead refresh token -> one silent login. The retry's outcome is final, so it never loops.
 * Any transport (wx.request, wx.uploadFile) can be wrapped this way.
 */
function withSession(send) {
  const usedToken = getLocalToken();
  return send(usedToken).catch(function (err) {
    let recovered;
    if (err.reason === 'TOKEN_EXPIRED') {
      recovered = replacedSince(usedToken)
        ? Promise.resolve()
        : refreshToken().catch(function (refreshErr) {
            if (SESSION_GONE.indexOf(refreshErr.reason) === -1) throw refreshErr;
            return loginAgain(usedToken);
          });
    } else if (err.reason === 'SESSION_REVOKED') {
      recovered = loginAgain(usedToken);
    } else {
      throw err;
    }
    return recovered.then(function () {
      return send(getLocalToken());
    });
  });
}

// ---------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------

/**
 * Sets where the API lives and how this library stores its state. Call it once, in app.js.
 *
 * @param {{baseURL: string, timeout?: number, storagePrefix?: string}} options
 *   baseURL without `/api/v1` (e.g. "https://api.example.com"); timeout in ms (default 10000);
 *   storagePrefix is put before the storage keys access_token, refresh_token, user_info.
 */
function configure(options) {
  const opts = options || {};
  if (typeof opts.baseURL !== 'string' || !opts.baseURL) {
    throw new TypeError('wechat-login: configure({ baseURL }) needs the API origin, e.g. "https://api.example.com"');
  }
  config.baseURL = opts.baseURL.replace(/\/+$/, '');
  config.timeout = typeof opts.timeout === 'number' ? opts.timeout : 10000;
  config.storagePrefix = typeof opts.storagePrefix === 'string' ? opts.storagePrefix : '';
}

/**
 * Calls the API with the stored bearer token (none when nothing is stored) and
 * resolves the envelope's `data`. Recovers once from TOKEN_EXPIRED (refresh) and
 * SESSION_REVOKED (silent login); every other error rejects at once.
 *
 * @param {{url: string, method?: string, data?: *, header?: Object}} options
 *   `url` is a path on baseURL, e.g. "/api/v1/user/profile".
 * @returns {Promise<*>}
 */
function request(options) {
  const opts = options || {};
  return withSession(function (token) {
    return callApi({
      path: opts.url,
      method: opts.method || 'GET',
      data: opts.data,
      header: opts.header,
      token: token,
    });
  });
}

/**
 * Logs out on the server (POST /api/v1/auth/logout) and clears local state in
 * every case, even when the network fails. Always resolves.
 *
 * @param {{all?: boolean}} [options] all: end every session of the user, on every device.
 * @returns {Promise<void>}
 */
function logout(options) {
  const all = !!(options && options.all);
  const token = getLocalToken();
  const served = token
    ? callApi({ path: API + '/auth/logout', method: 'POST', data: all ? { all: true } : undefined, token: token })
    : Promise.resolve();
  return served.then(
    function () {
      clearLocalState();
    },
    function () {
      // The server may still hold the session, but this phone forgets it either way.
      clearLocalState();
    }
  );
}

/**
 * Whether a login is stored on this phone (no network call).
 *
 * @returns {Promise<boolean>}
 */
function checkLoginStatus() {
  return Promise.resolve(getLocalToken() !== '');
}

/**
 * @returns {string} the stored access token, or "".
 */
function getLocalToken() {
  const token = readStorage('access_token');
  return typeof token === 'string' ? token : '';
}

/**
 * @returns {Object|null} the stored user, or null.
 */
function getLocalUserInfo() {
  const user = readStorage('user_info');
  return user && typeof user === 'object' ? user : null;
}

/**
 * Saves profile fields (PATCH /api/v1/user/profile) and refreshes the stored user.
 *
 * @param {{nickname?: string, avatar?: string, bio?: string}} fields
 * @returns {Promise<Object>} the updated profile
 */
function updateProfile(fields) {
  return request({ url: API + '/user/profile', method: 'PATCH', data: fields }).then(function (profile) {
    writeStorage('user_info', Object.assign({}, getLocalUserInfo(), profile));
    return profile;
  });
}

/**
 * Uploads a new avatar (POST /api/v1/user/avatar, multipart field "file") and
 * refreshes the stored user. Give it the temp path from
 * <button open-type="chooseAvatar"> (e.detail.avatarUrl). Recovers from
 * TOKEN_EXPIRED / SESSION_REVOKED like request(). The server answers
 * CONTENT_REJECTED for anything but a JPEG, PNG or WebP, PAYLOAD_TOO_LARGE over 2 MiB.
 *
 * @param {string} tempFilePath
 * @returns {Promise<Object>} the updated profile; its `avatar` is the image's https URL
 */
function uploadAvatar(tempFilePath) {
  if (typeof tempFilePath !== 'string' || !tempFilePath) {
    return Promise.reject(new AuthError(0, 'INVALID_REQUEST', 'uploadAvatar needs the temp file path from chooseAvatar'));
  }
  return withSession(function (token) {
    return uploadToApi({ path: API + '/user/avatar', filePath: tempFilePath, name: 'file', token: token });
  }).then(function (profile) {
    writeStorage('user_info', Object.assign({}, getLocalUserInfo(), profile));
    return profile;
  });
}

// HTTP status of a phone_error that wx-login reported in its (successful) answer.
const PHONE_ERROR_STATUS = { PHONE_CODE_INVALID: 400, WECHAT_RATE_LIMITED: 429, WECHAT_UNAVAILABLE: 503 };

function rememberPhone(masked) {
  const user = getLocalUserInfo();
  if (user) writeStorage('user_info', Object.assign({}, user, { phone_masked: masked }));
}

/**
 * Binds the user's phone number from the event of
 * <button open-type="getPhoneNumber" bindgetphonenumber="...">. Pass the event as is.
 *
 * - Not logged in and the event has a code: one tap logs in and binds (wx-login with phoneCode);
 *   resolves { masked, user, isNewUser }. If the login succeeds but WeChat rejects the phone
 *   code, the user stays logged in and the promise rejects with that reason.
 * - Logged in: POST /api/v1/auth/phone with e.detail.code, or with e.detail.encryptedData + iv on
 *   base libraries before 2.21.2 (decrypted with the session_key of the latest wx.login, so call
 *   nothing that runs wx.login between the tap and this call); resolves the server's
 *   { phone_number, pure_phone_number, country_code, masked }. Recovers from TOKEN_EXPIRED and
 *   SESSION_REVOKED like request().
 *
 * The stored user gains phone_masked. Rejects AuthError(0, 'PHONE_DENIED') when the user declined
 * (or the phone gave no number), and the server's reason otherwise: PHONE_CODE_INVALID,
 * DECRYPT_FAILED (log in again, then ask for the number again), WECHAT_UNAVAILABLE, ...
 *
 * @param {{detail: {errMsg?: string, code?: string, encryptedData?: string, iv?: string}}} e
 * @returns {Promise<Object>} always with `masked`
 */
function bindPhone(e) {
  const detail = (e && e.detail) || {};
  const errMsg = typeof detail.errMsg === 'string' ? detail.errMsg : '';
  const code = typeof detail.code === 'string' ? detail.code : '';
  const legacy = typeof detail.encryptedData === 'string' && detail.encryptedData && typeof detail.iv === 'string';
  if (!/:ok$/.test(errMsg) || !(code || legacy)) {
    return Promise.reject(new AuthError(0, 'PHONE_DENIED', errMsg || 'getPhoneNumber gave no phone number'));
  }
  if (code && !getLocalToken() && !loginInFlight) {
    return wechatLogin({ phoneCode: code }).then(function (result) {
      if (result.phoneError) {
        const status = PHONE_ERROR_STATUS[result.phoneError] || 500;
        throw new AuthError(status, result.phoneError, 'logged in, but the phone number was not bound');
      }
      return { masked: result.phoneMasked, user: result.user, isNewUser: result.isNewUser };
    });
  }
  const body = code ? { code: code } : { encryptedData: detail.encryptedData, iv: detail.iv };
  // Not logged in yet (legacy data, or a login already in flight): bind once that login is done.
  const ready = getLocalToken() ? Promise.resolve() : ensureLogin();
  return ready
    .then(function () {
      return withSession(function (token) {
        return callApi({ path: API + '/auth/phone', method: 'POST', data: body, token: token });
      });
    })
    .then(function (phone) {
      rememberPhone(phone.masked);
      return phone;
    });
}

module.exports = {
  AuthError: AuthError,
  configure: configure,
  wechatLogin: wechatLogin,
  ensureLogin: ensureLogin,
  request: request,
  refreshToken: refreshToken,
  logout: logout,
  checkLoginStatus: checkLoginStatus,
  getLocalToken: getLocalToken,
  getLocalUserInfo: getLocalUserInfo,
  updateProfile: updateProfile,
  uploadAvatar: uploadAvatar,
  bindPhone: bindPhone,
};
