const auth = require('../../utils/wechat-login.js');

// What the user sees for the failures they can do something about.
// The library's `reason` is stable; its `message` is for logs, not for people.
const ERROR_TEXT = {
  NETWORK_ERROR: '网络不可用，请检查网络后重试',
  TIMEOUT: '网络超时，请重试',
  WX_LOGIN_FAILED: '微信登录失败，请重试',
  WECHAT_CODE_INVALID: '登录已失效，请重新点击登录',
  WECHAT_RATE_LIMITED: '操作太频繁，请稍后再试',
  WECHAT_UNAVAILABLE: '微信服务繁忙，请稍后再试',
  CONTENT_REJECTED: '昵称包含不当内容，请修改后再试',
  INVALID_REQUEST: '昵称格式不正确',
};

function errorText(err, fallback) {
  return (err && ERROR_TEXT[err.reason]) || fallback;
}

Page({
  data: {
    // The avatar the user picked: a temp file on the phone, shown as a preview.
    // It becomes the server-side avatar once it is uploaded (POST /api/v1/user/avatar).
    avatarPreview: '',
    nickname: '',
    user: null,
    loggingIn: false,
  },

  onLoad() {
    const user = auth.getLocalUserInfo();
    if (auth.getLocalToken() && user) this.showUser(user);
  },

  onChooseAvatar(e) {
    this.setData({ avatarPreview: e.detail.avatarUrl });
  },

  // The nickname is read from the form on submit rather than from input events:
  // WeChat may fill or clear an <input type="nickname"> without firing them.
  async onSubmit(e) {
    if (this.data.loggingIn) return;
    const nickname = (e.detail.value.nickname || '').trim();
    this.setData({ loggingIn: true });
    wx.showLoading({ title: '登录中', mask: true });

    let user;
    try {
      user = (await auth.wechatLogin()).user;
    } catch (err) {
      this.finish(errorText(err, '登录失败，请重试'));
      return;
    }

    try {
      user = await this.saveProfile(user, nickname);
    } catch (err) {
      // Logged in all the same; only the profile was not saved.
      this.showUser(user);
      this.finish(errorText(err, '昵称保存失败，请稍后再试'));
      return;
    }

    this.showUser(user);
    this.finish('登录成功', 'success');
  },

  // Saves what the user filled in. The avatar stays a local preview (avatarPreview)
  // until the upload endpoint is wired in here.
  async saveProfile(user, nickname) {
    if (!nickname || nickname === user.nickname) return user;
    return auth.updateProfile({ nickname });
  },

  async onLogout() {
    wx.showLoading({ title: '正在退出', mask: true });
    await auth.logout();
    wx.hideLoading();
    this.setData({ user: null, nickname: '', avatarPreview: '' });
    wx.showToast({ title: '已退出登录', icon: 'success' });
  },

  showUser(user) {
    this.setData({
      user,
      nickname: user.nickname || '',
      avatarPreview: this.data.avatarPreview || user.avatar || '',
    });
  },

  // hideLoading first: the loading box and the toast share one slot on screen.
  finish(title, icon) {
    wx.hideLoading();
    this.setData({ loggingIn: false });
    wx.showToast({ title, icon: icon || 'none' });
  },
});
