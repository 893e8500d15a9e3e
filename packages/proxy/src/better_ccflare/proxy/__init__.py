"""The better-ccflare request pipeline and the state it keeps about accounts.

The public surface is exactly the union of the private modules' ``__all__`` lists.
"""

from . import (
    _account_pool,
    _account_setup,
    _aiohttp_transport,
    _api_key_admin,
    _api_key_auth,
    _api_key_hashing,
    _auto_refresh,
    _cooldowns,
    _h1_transport,
    _jobs,
    _local_answers,
    _payloads,
    _pipeline,
    _request_events,
    _token_manager,
    _transport,
    _unavailable,
    _usage_cache,
)
from ._account_pool import *
from ._account_setup import *
from ._aiohttp_transport import *
from ._api_key_admin import *
from ._api_key_auth import *
from ._api_key_hashing import *
from ._auto_refresh import *
from ._cooldowns import *
from ._h1_transport import *
from ._jobs import *
from ._local_answers import *
from ._payloads import *
from ._pipeline import *
from ._request_events import *
from ._token_manager import *
from ._transport import *
from ._unavailable import *
from ._usage_cache import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _aiohttp_transport.__all__
__all__ += _account_pool.__all__
__all__ += _account_setup.__all__
__all__ += _api_key_admin.__all__
__all__ += _api_key_auth.__all__
__all__ += _auto_refresh.__all__
__all__ += _api_key_hashing.__all__
__all__ += _cooldowns.__all__
__all__ += _h1_transport.__all__
__all__ += _jobs.__all__
__all__ += _local_answers.__all__
__all__ += _payloads.__all__
__all__ += _pipeline.__all__
__all__ += _request_events.__all__
__all__ += _token_manager.__all__
__all__ += _transport.__all__
__all__ += _unavailable.__all__
__all__ += _usage_cache.__all__
