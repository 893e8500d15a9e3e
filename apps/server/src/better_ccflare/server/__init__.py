"""Composes the running better-ccflare service from the packages below it."""

from ._service import Service, freeze_startup_heap, serve, uvicorn_config

__version__ = "0.1.0"

__all__ = ["Service", "freeze_startup_heap", "serve", "uvicorn_config"]
