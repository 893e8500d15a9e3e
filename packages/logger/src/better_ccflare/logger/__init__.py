"""Logging for better-ccflare: formats, a rotating JSON-lines file, redaction and the live bus.

Built on the standard ``logging`` module: packages log with
``logging.getLogger("better_ccflare.<package>")`` and pass structured data as
``extra={"data": {...}}``; the application calls :func:`configure_logging` once at start-up.
The public surface is exactly the union of the private modules' ``__all__`` lists.
"""

from . import _bus, _event, _formats, _redaction, _setup, _tail
from ._bus import *
from ._event import *
from ._formats import *
from ._redaction import *
from ._setup import *
from ._tail import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _bus.__all__
__all__ += _event.__all__
__all__ += _formats.__all__
__all__ += _redaction.__all__
__all__ += _setup.__all__
__all__ += _tail.__all__
