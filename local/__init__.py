"""Local development only (never deployed): the dev server and the WeChat simulator."""
