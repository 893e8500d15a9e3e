"""The HTTP face of better-ccflare: the proxy dispatcher, health, the management API and the
dashboard.

The public surface is exactly the union of the private modules' ``__all__`` lists.
"""

from . import _api_context, _dashboard, _dispatch, _health, _management
from ._api_context import *
from ._dashboard import *
from ._dispatch import *
from ._health import *
from ._management import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _api_context.__all__
__all__ += _dashboard.__all__
__all__ += _dispatch.__all__
__all__ += _health.__all__
__all__ += _management.__all__
