"""The HTTP face of better-ccflare: the proxy route, health, and (later) the management API.

The public surface is exactly the union of the private modules' ``__all__`` lists.
"""

from . import _dispatch, _health
from ._dispatch import *
from ._health import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _dispatch.__all__
__all__ += _health.__all__
