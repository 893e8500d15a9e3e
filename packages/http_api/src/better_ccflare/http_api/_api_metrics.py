"""``GET /metrics``: the Prometheus metrics, in the text exposition format.

Once any proxy key exists it needs an admin key or the scrape token (``metrics_token``), both
as ``Authorization: Bearer``; the check is the management app's guard. Not in the OpenAPI
schema: it is Prometheus' format, documented in ``docs/metrics.md``.
"""

from __future__ import annotations

from litestar import Response, get
from litestar.exceptions import NotFoundException
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from ._api_context import Ctx

__all__ = ["METRICS_HANDLERS"]


@get("/metrics", include_in_schema=False, sync_to_thread=False)
def metrics(ctx: Ctx) -> Response[bytes]:
    if ctx.metrics is None:
        raise NotFoundException("This service exports no metrics.")
    return Response(ctx.metrics.exposition(), media_type=CONTENT_TYPE_PLAIN_0_0_4)


METRICS_HANDLERS = (metrics,)
