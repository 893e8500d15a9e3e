"""Domain types, configuration, errors and the clock shared by every better-ccflare package.

This package has no I/O of its own beyond reading the config and ``.env`` files; everything
else builds on these types. The public surface is exactly the union of the private modules'
``__all__`` lists.
"""

from . import _accounts, _api_keys, _clock, _config, _dotenv, _errors, _oauth, _requests, _strategy
from ._accounts import *
from ._api_keys import *
from ._clock import *
from ._config import *
from ._dotenv import *
from ._errors import *
from ._oauth import *
from ._requests import *
from ._strategy import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _accounts.__all__
__all__ += _api_keys.__all__
__all__ += _clock.__all__
__all__ += _config.__all__
__all__ += _dotenv.__all__
__all__ += _errors.__all__
__all__ += _oauth.__all__
__all__ += _requests.__all__
__all__ += _strategy.__all__
