"""Pure account-selection strategies for better-ccflare.

Each strategy orders the account pool for one request from data alone (the accounts, the time
and the cached usage, all passed in), so it does no I/O and can be driven by hypothesis. The
public surface is exactly the union of the private modules' ``__all__`` lists.
"""

from . import (
    _drain_soonest,
    _eligibility,
    _factory,
    _least_used,
    _selection,
    _session,
    _session_affinity,
    _strategy,
)
from ._drain_soonest import *
from ._eligibility import *
from ._factory import *
from ._least_used import *
from ._selection import *
from ._session import *
from ._session_affinity import *
from ._strategy import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _drain_soonest.__all__
__all__ += _eligibility.__all__
__all__ += _factory.__all__
__all__ += _least_used.__all__
__all__ += _selection.__all__
__all__ += _session.__all__
__all__ += _session_affinity.__all__
__all__ += _strategy.__all__
