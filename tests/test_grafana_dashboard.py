"""docs/grafana-dashboard.json queries only metrics the service exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from .support.service import running_proxy

DASHBOARD = Path(__file__).parent.parent / "docs" / "grafana-dashboard.json"
_METRIC = re.compile(r"\bbetter_ccflare_[a-z0-9_]+")


def _queried_metrics() -> set[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    return {name for expr in exprs for name in _METRIC.findall(expr)}


async def test_every_metric_the_dashboard_queries_is_in_a_live_scrape(tmp_path: Path) -> None:
    async with running_proxy(tmp_path) as (_, url), httpx2.AsyncClient() as client:
        text = (await client.get(f"{url}/metrics")).text
    families = list(text_string_to_metric_families(text))
    # A family's samples are named with their suffixes (_total, _bucket, _sum, _count); a query
    # may name any of them, even before the first request gives a family its first sample.
    exported = {family.name for family in families}
    exported |= {sample.name for family in families for sample in family.samples}
    exported |= {
        f"{family.name}{suffix}"
        for family in families
        for suffix in {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}.get(
            family.type, ()
        )
    }
    queried = _queried_metrics()
    assert queried, "the dashboard queries no metric"
    assert queried <= exported, sorted(queried - exported)
