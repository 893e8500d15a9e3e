"""better-ccflare's persistent state: SQLite behind typed, backend-neutral repositories.

Open a :class:`Store`, use its repositories (``store.accounts``, ``store.requests``, ...), close
it on shutdown. Every write goes through one batching writer thread and every read through one
of two reader threads, so the event loop never waits on SQLite. Upstream credentials are
encrypted at rest under a :class:`SecretKey` kept outside the database. The public surface is
exactly the union of the private modules' ``__all__`` lists.
"""

from . import _analytics, _crypto, _errors, _maintenance, _repositories, _store
from ._analytics import *
from ._crypto import *
from ._errors import *
from ._maintenance import *
from ._repositories import *
from ._store import *

__version__ = "0.1.0"

__all__: list[str] = []
__all__ += _analytics.__all__
__all__ += _crypto.__all__
__all__ += _errors.__all__
__all__ += _maintenance.__all__
__all__ += _repositories.__all__
__all__ += _store.__all__
