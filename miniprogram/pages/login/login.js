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

// The avatar upload fails for other reasons than the nickname: say which part went wrong.
const AVATAR_ERROR_TEXT = {
  CONTENT_REJECTED: '头像图片无法使用，请换一张（JPEG、PNG 或 WebP）',
  PAYLOAD_TOO_LARGE: '头像图片太大，请换一张（最大 2 MB）',
  NETWORK_ERROR: ERROR_TEXT.NETWORK_ERROR,
  TIMEOUT: ERROR_TEXT.TIMEOUT,
};

// The getPhoneNumber button ("手机号一键登录" / "绑定手机号").
const PHONE_ERROR_TEXT = {
  PHONE_DENIED: '未授权手机号',
  PHONE_CODE_INVALID: '手机号授权已失效，请重试',
  DECRYPT_FAILED: '登录状态已变化，请重新获取手机号',
};

function errorText(err, fallback) {
  return (err && ERROR_TEXT[err.reason]) || fallback;
}

// A chooseAvatar result is a temp file on the phone (http://tmp/..., wxfile://...), shown as a
// preview until it is uploaded; an https URL is one the server already has.
function isLocalFile(path, user) {
  return !!path && path !== user.avatar && path.indexOf('https://') !== 0;
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

    // Logged in all the same if the profile is not (fully) saved; the toast says what was not.
    const saved = await this.saveProfile(user, nickname);
    this.showUser(saved.user);
    if (saved.error) this.finish(saved.error);
    else this.finish('登录成功', 'success');
  },

  // Saves what the user filled in: the chosen avatar is uploaded (POST /api/v1/user/avatar), then
  // the nickname is saved. A failure of one does not stop the other. Never rejects: resolves
  // { user, error } with the latest user and the text of the first failure ('' when none).
  async saveProfile(user, nickname) {
    let error = '';
    const avatar = this.data.avatarPreview;
    if (isLocalFile(avatar, user)) {
      try {
        user = await auth.uploadAvatar(avatar);
        this.setData({ avatarPreview: user.avatar });
      } catch (err) {
        error = (err && AVATAR_ERROR_TEXT[err.reason]) || '头像上传失败，请稍后再试';
      }
    }
    if (nickname && nickname !== user.nickname) {
      try {
        user = await auth.updateProfile({ nickname });
      } catch (err) {
        error = error || errorText(err, '昵称保存失败，请稍后再试');
      }
    }
    return { user, error };
  },

  // <button open-type="getPhoneNumber">: logged out, one tap logs in and binds the phone;
  // logged in, it binds (or changes) the phone of this account.
  async onGetPhoneNumber(e) {
    if (this.data.loggingIn) return;
    const binding = !!this.data.user;
    this.setData({ loggingIn: true });
    wx.showLoading({ title: binding ? '绑定中' : '登录中', mask: true });
    try {
      await auth.bindPhone(e);
    } catch (err) {
      // A one-tap login may have succeeded even though the phone was not bound: show that user.
      const user = auth.getLocalUserInfo();
      if (auth.getLocalToken() && user) this.showUser(user);
      const text = (err && PHONE_ERROR_TEXT[err.reason]) || errorText(err, '手机号获取失败，请重试');
      this.finish(text);
      return;
    }
    this.showUser(auth.getLocalUserInfo());
    this.finish(binding ? '绑定成功' : '登录成功', 'success');
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
