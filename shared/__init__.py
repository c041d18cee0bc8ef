"""Shared package of the WeChat mini-program login backend: domain logic and HTTP plumbing."""
