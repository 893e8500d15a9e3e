"""Background work the server schedules beside the request path.

The usage poller, the periodic maintenance jobs with the set that starts and stops them
together, and the auto-refresh scheduler that opens a subscription's next usage window as soon
as the last one reset; and the leadership that, in a fleet, lets one instance run the jobs
that act on shared state. Each reads and writes the same in-memory account pool the request path
uses, but none of it runs inside a request.
"""

from ._auto_refresh import AUTO_REFRESH_PROVIDERS, AutoRefreshScheduler
from ._background_jobs import BackgroundJobs
from ._leadership import JobLeadership
from ._periodic_job import PeriodicJob
from ._usage_poller import UsagePoller

__all__ = [
    "AUTO_REFRESH_PROVIDERS",
    "AutoRefreshScheduler",
    "BackgroundJobs",
    "JobLeadership",
    "PeriodicJob",
    "UsagePoller",
]
