const auth = require('./utils/wechat-login.js');

// Configured before any page loads, so every page can use the library at once.
// `make dev` serves the API on 127.0.0.1:8000 (DevTools only: "不校验合法域名" is on in
// project.config.json). For a phone, use your HTTPS domain and add it to the
// request legal domain list (request 合法域名) in the mini-program admin console.
auth.configure({
  baseURL: 'http://127.0.0.1:8000',
  timeout: 10000,
});

App({});
