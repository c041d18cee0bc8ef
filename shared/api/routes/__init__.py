"""Routers, one module per function so each function imports only what it serves."""
