"""In-account model fallback: ``--model-map sonnet=a,b`` tries ``b`` on the same account when
the upstream says ``a`` is unavailable, before the request fails over to another account.

An account's mapping names a list of models per model or family (``map_model``); providers send
the first. For a fallback attempt the pipeline pins the client's model to a later entry with an
exact-id mapping, which wins over the family one in every provider's ``map_model`` call, so no
provider needs to know about fallbacks. What counts as "unavailable" follows the TypeScript
better-ccflare (inventory §2.6): any 429 except one for lack of credit, or a 404/400 whose error
says the model was not found.
"""

from __future__ import annotations

import msgspec

from better_ccflare.core import Account
from better_ccflare.providers import map_model

__all__ = ["fallback_models", "model_unavailable", "pin_model"]

_MODEL_MISSING = (b"model_not_found", b"model not found")
"""Error bodies that say so whatever model they name."""
_NOT_FOUND = (b"not_found_error", b"does not exist")
"""Error bodies that say it only when they also name the model (a 404 for a path says these
too)."""


def fallback_models(account: Account, model: str | None) -> tuple[str, ...]:
    """The models ``account`` tries for the client's ``model``, in order; empty without a
    mapping list of two or more (nothing to fall back to)."""
    if model is None or not account.model_mappings:
        return ()
    models = map_model(model, account.model_mappings)
    return models if len(models) > 1 else ()


def pin_model(account: Account, model: str, target: str) -> Account:
    """``account`` as the provider should see it for one attempt: ``model`` sent as ``target``."""
    return msgspec.structs.replace(
        account, model_mappings={**account.model_mappings, model: (target,)}
    )


def model_unavailable(status: int, error_body: bytes | None, upstream_model: str | None) -> bool:
    """Whether an answer says the model tried is unavailable on this account, so the next model
    of its list may serve: a 429, or a 404/400 saying the model was not found."""
    if status == 429:
        return True
    if status not in (400, 404) or not error_body:
        return False
    lowered = error_body.lower()
    if any(marker in lowered for marker in _MODEL_MISSING):
        return True
    named = upstream_model is not None and upstream_model.lower().encode() in lowered
    return named and any(marker in lowered for marker in _NOT_FOUND)
