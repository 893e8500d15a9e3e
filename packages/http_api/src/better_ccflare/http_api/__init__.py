"""The HTTP face of better-ccflare: the proxy dispatcher, health, the management API and the
dashboard.

The route modules (``_api_*.py``) are leaves; what several of them share lives in its own
module. The names below are the whole public surface.
"""

from ._api_context import Ctx, LiveSettings, ManagementContext
from ._dashboard import (
    DASHBOARD_PAGES,
    DASHBOARD_SECURITY_HEADERS,
    DashboardPage,
    dashboard_handlers,
)
from ._dispatch import Dispatcher
from ._health import Health, PoolStatus, health_handlers
from ._management import MANAGEMENT_HANDLERS, management_app
from ._metric_labels import ModelLabels
from ._metrics import Metrics
from ._request_metrics import RequestMetrics
from ._trusted_hosts import TrustedHosts

__version__ = "0.1.0"

__all__ = [
    "DASHBOARD_PAGES",
    "DASHBOARD_SECURITY_HEADERS",
    "MANAGEMENT_HANDLERS",
    "Ctx",
    "DashboardPage",
    "Dispatcher",
    "Health",
    "LiveSettings",
    "ManagementContext",
    "Metrics",
    "ModelLabels",
    "PoolStatus",
    "RequestMetrics",
    "TrustedHosts",
    "dashboard_handlers",
    "health_handlers",
    "management_app",
]
