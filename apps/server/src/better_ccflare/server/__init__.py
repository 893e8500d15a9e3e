"""Composes the running better-ccflare service from the packages below it."""

from . import _service
from ._service import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _service.__all__
