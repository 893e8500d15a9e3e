"""Each strategy driven by hypothesis against a model of the pool it serves.

The machine owns the pool as the proxy would (accounts, cached usage, the clock) and, after
each request, persists the returned state changes just as the proxy must. Eligibility is
re-stated here from the reference rules rather than imported, so the model checks the package
instead of agreeing with it by construction.
"""

from __future__ import annotations

import copy
from typing import ClassVar

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from msgspec.structs import replace

from better_ccflare.core import (
    Account,
    PauseReason,
    RateLimitState,
    SessionState,
    StrategyName,
)
from better_ccflare.load_balancer import (
    AccountUsage,
    Selection,
    SelectionRequest,
    create_strategy,
    is_eligible,
)

from .builders import HOUR, NOW

MINUTE = 60_000
DURATION = 10 * MINUTE
"""A short session, so that a 30-step run sees sessions and pins expire."""
PLAN_PROVIDERS = {"anthropic", "zai"}
MAX_ACCOUNTS = 6

offsets = st.sampled_from([-2 * DURATION, -1001, -1000, -1, 0, 1, 500, DURATION]) | st.integers(
    -2 * HOUR, 2 * HOUR
)
steps = st.sampled_from([0, 1, 499, 500, 1001, DURATION - 1, DURATION]) | st.integers(0, DURATION)
account_specs = st.tuples(
    st.integers(0, 1) | st.integers(0, 3),
    st.sampled_from(["anthropic", "zai", "claude-console-api"]),
    st.sampled_from(["alpha", "beta"]),
    st.booleans(),
)
"""Priority, provider, name (names repeat, so ties fall to the id) and auto-fallback."""
CHANGES = [
    "pause",
    "resume",
    "cool_down",
    "window_reset_moves",
    "window_exhausted",
    "login_expires",
    "logged_in_again",
]
utilizations = st.none() | st.sampled_from([0.0, 10.0, 50.0, 99.9, 100.0, 150.0])
SETTINGS = settings(max_examples=100, stateful_step_count=30, deadline=None)


def serviceable(account: Account, usage: AccountUsage | None, now_ms: int) -> bool:
    """Everything the spec asks of an account except not being paused."""
    until = account.rate_limit.limited_until_ms
    exhausted = (
        usage is not None
        and usage.utilization is not None
        and usage.utilization >= 100
        and (usage.resets_at_ms is None or usage.resets_at_ms > now_ms)
    )
    return not account.requires_reauth and (until is None or now_ms >= until) and not exhausted


def window_has_reset(account: Account, now_ms: int) -> bool:
    """The auto-fallback condition: opted in, a plan provider, reset over a second ago."""
    reset = account.rate_limit.reset_at_ms
    return (
        account.auto_fallback_enabled
        and account.provider in PLAN_PROVIDERS
        and reset is not None
        and reset < now_ms - 1000
    )


def lifts(account: Account, now_ms: int) -> bool:
    """Auto-unpause: only pauses caused by a usage window (or with no recorded reason)."""
    window_pause = account.pause_reason in {
        None,
        PauseReason.OVERAGE,
        PauseReason.RATE_LIMIT_WINDOW,
    }
    return account.paused and window_pause and window_has_reset(account, now_ms)


def running_session(account: Account, now_ms: int) -> int | None:
    """When the account's still-running session began, if it is a plan account with one."""
    started = account.session.started_at_ms
    if account.provider not in PLAN_PROVIDERS or started is None or now_ms - started >= DURATION:
        return None
    return started


class PoolMachine(RuleBasedStateMachine):
    """Rules shared by every strategy; subclasses add what their strategy promises."""

    strategy_name: ClassVar[StrategyName]

    def __init__(self) -> None:
        super().__init__()
        self.strategy = create_strategy(self.strategy_name)
        self.now: int = NOW
        self.accounts: dict[str, Account] = {}
        self.usage: dict[str, AccountUsage] = {}
        self.added = 0
        self.holder: str | None = None
        """The account the previous non-empty selection put first."""

    # --- the pool changes under the strategy ---------------------------------------------

    def has_accounts(self) -> bool:
        return bool(self.accounts)

    def pick(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.accounts)), label="account")

    def update(self, account_id: str, **changes: object) -> None:
        self.accounts[account_id] = replace(self.accounts[account_id], **changes)

    @initialize(specs=st.lists(account_specs, min_size=2, max_size=4))
    def start_with_accounts(self, specs: list[tuple[int, str, str, bool]]) -> None:
        for spec in specs:
            self.add_account(spec)

    @precondition(lambda self: len(self.accounts) < MAX_ACCOUNTS)
    @rule(spec=account_specs)
    def add_account(self, spec: tuple[int, str, str, bool]) -> None:
        priority, provider, name, auto_fallback = spec
        self.added += 1
        account_id = f"acct-{self.added}"
        self.accounts[account_id] = Account(
            id=account_id,
            name=name,
            provider=provider,
            created_at_ms=self.now,
            priority=priority,
            auto_fallback_enabled=auto_fallback,
        )

    @precondition(has_accounts)
    @rule(data=st.data())
    def remove_account(self, data: st.DataObject) -> None:
        account_id = self.pick(data)
        del self.accounts[account_id]
        self.usage.pop(account_id, None)

    @precondition(has_accounts)
    @rule(
        data=st.data(),
        change=st.sampled_from(CHANGES),
        reason=st.none() | st.sampled_from(PauseReason),
        offset=offsets,
    )
    def change_account(
        self, data: st.DataObject, change: str, reason: PauseReason | None, offset: int
    ) -> None:
        """One thing that happens to an account between requests (``offset`` is from now)."""
        account_id = self.pick(data)
        limits = self.accounts[account_id].rate_limit
        match change:
            case "pause":
                self.update(account_id, paused=True, pause_reason=reason)
            case "resume":
                self.update(account_id, paused=False, pause_reason=None)
            case "cool_down":
                cooldown = replace(limits, limited_until_ms=self.now + offset)
                self.update(account_id, rate_limit=cooldown)
            case "window_reset_moves":
                self.update(account_id, rate_limit=replace(limits, reset_at_ms=self.now + offset))
            case "window_exhausted":
                # What the proxy does on a window-exhausting 429: bench until the reset, pause.
                benched = RateLimitState(
                    reset_at_ms=self.now + offset, limited_until_ms=self.now + offset
                )
                self.update(
                    account_id,
                    rate_limit=benched,
                    paused=True,
                    pause_reason=PauseReason.RATE_LIMIT_WINDOW,
                )
            case "login_expires":
                self.update(account_id, requires_reauth=True)
            case _:
                self.update(account_id, requires_reauth=False)

    @precondition(has_accounts)
    @rule(
        data=st.data(),
        utilization=utilizations,
        resets=st.none() | offsets,
        weekly=st.none() | offsets,
    )
    def set_usage(
        self, data: st.DataObject, utilization: float | None, resets: int | None, weekly: int | None
    ) -> None:
        self.usage[self.pick(data)] = AccountUsage(
            utilization=utilization,
            resets_at_ms=None if resets is None else self.now + resets,
            weekly_resets_at_ms=None if weekly is None else self.now + weekly,
        )

    @rule(ms=steps)
    def advance(self, ms: int) -> None:
        self.now += ms

    @precondition(
        lambda self: any(
            (account.rate_limit.limited_until_ms or 0) > self.now
            for account in self.accounts.values()
        )
    )
    @rule(data=st.data(), just_before=st.booleans())
    def advance_to_a_cooldown_end(self, data: st.DataObject, just_before: bool) -> None:
        ends = sorted(
            until
            for account in self.accounts.values()
            if (until := account.rate_limit.limited_until_ms) is not None and until > self.now
        )
        end = data.draw(st.sampled_from(ends), label="cooldown end")
        self.now = max(self.now, end - 1 if just_before else end)

    @precondition(
        lambda self: len(self.accounts) < MAX_ACCOUNTS and self.continuing_session() is not None
    )
    @rule(
        preferred=st.booleans(),
        provider=st.sampled_from(["anthropic", "zai"]),
        name=st.sampled_from(["alpha", "beta"]),
    )
    def idle_account_joins_mid_session(self, preferred: bool, provider: str, name: str) -> None:
        """An idle account appears while a session runs on a half-used one; a request follows.

        ``session`` must switch to it only if it is strictly preferred, and stay otherwise
        although it is less used; ``session-drain-soonest`` must stay either way.
        """
        holder = self.continuing_session()
        assert holder is not None
        self.usage[holder.id] = AccountUsage(utilization=50.0)
        priority = holder.priority - 1 if preferred else holder.priority
        self.add_account((priority, provider, name, False))
        self.request(None)

    # --- requests ---------------------------------------------------------------------------

    @rule(
        session_id=st.sampled_from([None, "s1", "s2"]),
        burst=st.integers(1, 3),
        gap_ms=st.sampled_from([0, 1, 250, MINUTE]),
    )
    def requests(self, session_id: str | None, burst: int, gap_ms: int) -> None:
        """A few requests in a row from one client, as a conversation sends them."""
        for _ in range(burst):
            self.request(session_id)
            self.now += gap_ms

    def request(self, session_id: str | None) -> None:
        request = SelectionRequest(
            now_ms=self.now,
            session_id=session_id,
            usage=dict(self.usage),
            session_duration_ms=DURATION,
        )
        pool = list(self.accounts.values())
        expected = copy.deepcopy(self.strategy).select(pool, request)
        reordered = copy.deepcopy(self.strategy).select(pool[::-1], request)
        peeked = self.strategy.peek(pool, request)
        selection = self.strategy.select(pool, request)

        assert selection == expected, "peek() changed what select() answers"
        assert selection == reordered, "the answer depends on the order accounts are listed in"
        primary = selection.primary
        assert peeked == (None if primary is None else primary.id)

        order = [account.id for account in selection.order]
        assert len(order) == len(set(order)), "an account appears twice"
        assert set(order) == self.eligible(), "order is not exactly the eligible accounts"
        assert selection.unpause == {i for i in order if self.accounts[i].paused}
        assert selection.start_session <= set(order[:1])

        self.check(selection, request)
        self.persist(selection)
        if primary is not None:
            self.holder = primary.id

    def persist(self, selection: Selection) -> None:
        for account_id in selection.start_session:
            self.update(account_id, session=SessionState(started_at_ms=self.now))
        for account_id in selection.unpause:
            self.update(account_id, paused=False, pause_reason=None)

    def check(self, selection: Selection, request: SelectionRequest) -> None:
        """What this strategy promises beyond the shared rules."""
        raise NotImplementedError

    # --- the model's view -------------------------------------------------------------------

    def eligible(self) -> set[str]:
        return {
            account_id
            for account_id, account in self.accounts.items()
            if (not account.paused or lifts(account, self.now))
            and serviceable(account, self.usage.get(account_id), self.now)
        }

    def best_priority(self) -> int:
        return min(self.accounts[account_id].priority for account_id in self.eligible())

    def check_rest_by_priority(self, selection: Selection) -> None:
        rest = [account.priority for account in selection.order[1:]]
        assert rest == sorted(rest), "after the first account, preferred accounts come first"

    def continuing_session(self) -> Account | None:
        """The previous first account if its session should continue, as far as only the
        session itself decides: still eligible, still running, and no eligible account has
        opened a session since (one the pool was on before a temporary move)."""
        if self.holder is None or self.holder not in self.eligible():
            return None
        holder = self.accounts[self.holder]
        started = running_session(holder, self.now)
        if started is None:
            return None
        for account_id in self.eligible() - {self.holder}:
            other = running_session(self.accounts[account_id], self.now)
            if other is not None and other >= started:
                return None
        return holder

    def any_session_running(self) -> bool:
        return any(running_session(self.accounts[i], self.now) is not None for i in self.eligible())

    def session_is_stale(self, account: Account) -> bool:
        if account.provider not in PLAN_PROVIDERS:
            return False
        started = account.session.started_at_ms
        reset = account.rate_limit.reset_at_ms
        return (
            started is None
            or self.now - started >= DURATION
            or (reset is not None and started < reset <= self.now)
        )

    def check_session_start(self, selection: Selection) -> None:
        primary = selection.primary
        if primary is not None:
            assert (primary.id in selection.start_session) is self.session_is_stale(primary)

    @invariant()
    def eligibility_follows_the_spec_and_cooldowns_end_on_time(self) -> None:
        for account_id, account in self.accounts.items():
            usage = self.usage.get(account_id)
            expected = not account.paused and serviceable(account, usage, self.now)
            assert is_eligible(account, usage, self.now) is expected


class SessionMachine(PoolMachine):
    strategy_name = StrategyName.SESSION

    def check(self, selection: Selection, request: SelectionRequest) -> None:
        if selection.primary is None:
            return
        assert selection.primary.priority == self.best_priority(), "a preferred account waits"
        self.check_rest_by_priority(selection)
        self.check_session_start(selection)
        holder = self.continuing_session()
        if holder is not None and holder.priority == self.best_priority():
            assert selection.primary.id == holder.id, "left a running session"
        if not self.any_session_running():
            fresh = min(self.fresh_rank(self.accounts[i]) for i in self.eligible())
            assert self.fresh_rank(selection.primary) == fresh, "not the least used"

    def fresh_rank(self, account: Account) -> tuple[int, float]:
        usage = self.usage.get(account.id)
        utilization = None if usage is None else usage.utilization
        return (account.priority, utilization or 0.0)


class DrainSoonestMachine(PoolMachine):
    strategy_name = StrategyName.SESSION_DRAIN_SOONEST

    def check(self, selection: Selection, request: SelectionRequest) -> None:
        primary = selection.primary
        if primary is None:
            return
        self.check_session_start(selection)
        fallbacks = [
            self.accounts[account_id]
            for account_id in self.eligible()
            if window_has_reset(self.accounts[account_id], self.now)
        ]
        holder = self.continuing_session()
        if fallbacks:
            assert window_has_reset(primary, self.now), "auto-fallback did not lead"
            assert primary.priority == min(account.priority for account in fallbacks)
        elif holder is not None:
            assert primary.id == holder.id, "left a running session"
        elif not self.any_session_running():
            soonest = min(self.drain_rank(self.accounts[i]) for i in self.eligible())
            assert self.drain_rank(primary) == soonest, "not the soonest weekly reset"
        rest = [self.drain_rank(account) for account in selection.order[1:]]
        assert rest == sorted(rest), "after the first account, soonest weekly reset first"

    def drain_rank(self, account: Account) -> tuple[bool, int, int]:
        usage = self.usage.get(account.id)
        weekly = None if usage is None else usage.weekly_resets_at_ms
        if weekly is None or weekly <= self.now:
            return (True, 0, account.priority)
        return (False, weekly, account.priority)


class LeastUsedMachine(PoolMachine):
    strategy_name = StrategyName.LEAST_USED

    def check(self, selection: Selection, request: SelectionRequest) -> None:
        assert selection.start_session == frozenset()
        priorities = [account.priority for account in selection.order]
        assert priorities == sorted(priorities), "a preferred account comes later"


class SessionAffinityMachine(PoolMachine):
    strategy_name = StrategyName.SESSION_AFFINITY

    def __init__(self) -> None:
        super().__init__()
        self.pins: dict[str, tuple[str, int]] = {}
        """Client session to (account id, pin expiry), as the spec says it should be."""

    def pinned_to_eligible(self) -> list[str]:
        """Sessions with a live pin to an eligible account, when another account could stand in."""
        eligible = self.eligible()
        if len(eligible) < 2:
            return []
        return sorted(
            session_id
            for session_id, (account_id, expires_at_ms) in self.pins.items()
            if self.now < expires_at_ms and account_id in eligible
        )

    @precondition(lambda self: self.pinned_to_eligible())
    @rule(data=st.data(), outage_ms=st.sampled_from([1, 1000, MINUTE]))
    def pinned_account_is_benched_mid_conversation(
        self, data: st.DataObject, outage_ms: int
    ) -> None:
        """The session must move away while its account cools down, then come back."""
        session_id = data.draw(st.sampled_from(self.pinned_to_eligible()), label="session")
        account_id = self.pins[session_id][0]
        limits = self.accounts[account_id].rate_limit
        self.update(account_id, rate_limit=replace(limits, limited_until_ms=self.now + outage_ms))
        self.request(session_id)
        self.now += outage_ms
        self.request(session_id)

    def check(self, selection: Selection, request: SelectionRequest) -> None:
        assert selection.start_session == frozenset()
        self.check_rest_by_priority(selection)
        primary = selection.primary
        session_id = request.session_id
        pin = None if session_id is None else self.pins.get(session_id)
        pinned = pin[0] if pin is not None and self.now < pin[1] else None
        if pinned is not None and pinned in self.eligible():
            assert primary is not None
            assert primary.id == pinned, "the session left (or did not return to) its account"
        elif primary is not None:
            assert primary.priority == self.best_priority(), "a preferred account waits"
        if session_id is None:
            return
        if pinned is None and primary is not None:
            pinned = primary.id
        if pinned is not None:
            self.pins[session_id] = (pinned, self.now + DURATION)


TestSession = SessionMachine.TestCase
TestSession.settings = SETTINGS
TestDrainSoonest = DrainSoonestMachine.TestCase
TestDrainSoonest.settings = SETTINGS
TestLeastUsed = LeastUsedMachine.TestCase
TestLeastUsed.settings = SETTINGS
TestSessionAffinity = SessionAffinityMachine.TestCase
TestSessionAffinity.settings = SETTINGS
