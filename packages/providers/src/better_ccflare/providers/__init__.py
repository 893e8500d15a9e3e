"""Upstream providers for the Anthropic Messages API.

The public surface is the union of the private modules' ``__all__`` lists.
"""

from . import _contract, _endpoints
from ._contract import *  # noqa: F403
from ._endpoints import *  # noqa: F403

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _contract.__all__
__all__ += _endpoints.__all__
