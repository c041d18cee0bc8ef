"""`make stress`: a bounded load test of the whole API on 127.0.0.1, then a check that nothing was lost or
duplicated.

It starts its own stack (local/stack.py: the dev server on moto, WeChat's simulator on a socket), runs
`--clients` concurrent virtual users for `--seconds` with a login/refresh/profile mix, prints requests/s,
p50/p95/p99 latency per operation and every error, then compares what the clients were told with what
storage holds (the dev server's local-only /__dev/stats): one user per openid with one id, ids unique,
exactly one session per successful login, none orphaned, the logged-out ones revoked. Exit status 1 if
any request failed or any check did not hold.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from local.dev_stats import STATS_PATH
from local.stack import running_stack
from local.wechat_sim import openid_for

MAX_SECONDS = 45
# Operation weights: what a mini-program does most is read its profile with a live token.
MIX = {"login": 15, "refresh": 15, "refresh_bearer": 10, "profile": 40, "patch": 15, "logout": 5}


@dataclass
class Ledger:
    """What the clients were told, to compare with storage afterwards."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: Counter[str] = field(default_factory=Counter)
    logins: Counter[str] = field(default_factory=Counter)  # openid -> successful logins
    logouts: Counter[str] = field(default_factory=Counter)  # openid -> sessions logged out
    ids: dict[str, set[int]] = field(default_factory=lambda: defaultdict(set))  # openid -> ids answered
    new_users: Counter[str] = field(default_factory=Counter)  # openid -> answers with is_new_user


@dataclass
class Session:
    openid: str
    access: str
    refresh: str


class VirtualUser:
    """One mini-program user at a time: logs in, then does the mix until it logs out."""

    def __init__(self, index: int, http: httpx.AsyncClient, ledger: Ledger, users: int) -> None:
        self.index = index
        self.http = http
        self.ledger = ledger
        self.users = users
        self.session: Session | None = None
        self.random = random.Random(index)  # noqa: S311 (a load mix, not a secret)

    async def _timed(self, operation: str, method: str, path: str, **kwargs: Any) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            self.ledger.errors[f"{operation}: {type(exc).__name__}"] += 1
            return None
        self.ledger.latencies[operation].append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            reason = response.json().get("reason", "?") if response.content else "?"
            self.ledger.errors[f"{operation}: {response.status_code} {reason}"] += 1
            return None
        return response

    def _bearer(self) -> dict[str, str]:
        assert self.session is not None
        return {"Authorization": f"Bearer {self.session.access}"}

    async def login(self) -> None:
        # Users are shared between clients (several sessions per user, concurrent first logins).
        name = f"stress{self.random.randrange(self.users)}"
        code = f"{name}.{self.index}.{secrets.token_hex(6)}"
        response = await self._timed("login", "POST", "/api/v1/auth/wx-login", json={"code": code})
        if response is None:
            return
        data = response.json()["data"]
        openid = data["user"]["openid"]
        if openid != openid_for(name):
            self.ledger.errors["login: wrong user"] += 1
        self.ledger.logins[openid] += 1
        self.ledger.ids[openid].add(int(data["user"]["id"]))
        self.ledger.new_users[openid] += bool(data["is_new_user"])
        self.session = Session(openid, data["access_token"], data["refresh_token"])

    async def step(self) -> None:
        if self.session is None:
            await self.login()
            return
        operation = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        if operation == "login":
            await self.login()
        elif operation == "refresh":
            body = {"refresh_token": self.session.refresh}
            response = await self._timed("refresh", "POST", "/api/v1/auth/refresh", json=body)
            if response is not None:
                data = response.json()["data"]
                self.session.access, self.session.refresh = data["access_token"], data["refresh_token"]
        elif operation == "refresh_bearer":
            path, headers = "/api/v1/auth/refresh", self._bearer()
            response = await self._timed("refresh_bearer", "POST", path, headers=headers)
            if response is not None:
                self.session.access = response.json()["data"]["access_token"]
        elif operation == "profile":
            await self._timed("profile", "GET", "/api/v1/user/profile", headers=self._bearer())
        elif operation == "patch":
            body = {"bio": f"stress {secrets.token_hex(4)}"}
            await self._timed("patch", "PATCH", "/api/v1/user/profile", headers=self._bearer(), json=body)
        else:
            if await self._timed("logout", "POST", "/api/v1/auth/logout", headers=self._bearer()) is not None:
                self.ledger.logouts[self.session.openid] += 1
                self.session = None


async def drive(url: str, clients: int, seconds: float, users: int) -> tuple[Ledger, float]:
    """Run the mix against `url` and answer the ledger and the wall time it took."""
    ledger = Ledger()
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        deadline = time.monotonic() + seconds

        async def run(index: int) -> None:
            user = VirtualUser(index, http, ledger, users)
            while time.monotonic() < deadline:
                await user.step()

        started = time.monotonic()
        await asyncio.gather(*(run(i) for i in range(clients)))
        return ledger, time.monotonic() - started


def check_storage(ledger: Ledger, stats: dict[str, Any]) -> list[str]:
    """Every way storage disagrees with what the clients were told (empty: nothing lost or duplicated)."""
    problems = []
    users: dict[str, Any] = stats["users"]
    for openid, logins in ledger.logins.items():
        stored = users.get(openid)
        if stored is None:
            problems.append(f"{openid}: {logins} logins answered, no user stored")
            continue
        if ledger.ids[openid] != {stored["id"]}:
            problems.append(f"{openid}: answered ids {sorted(ledger.ids[openid])}, stored {stored['id']}")
        if ledger.new_users[openid] != 1:
            problems.append(f"{openid}: is_new_user answered {ledger.new_users[openid]} times")
        if stored["sessions"] != logins:
            problems.append(f"{openid}: {logins} logins answered, {stored['sessions']} sessions stored")
        live = logins - ledger.logouts[openid]
        if stored["live"] != live:
            problems.append(f"{openid}: {stored['live']} live sessions stored, {live} expected")
    extra = set(users) - set(ledger.logins)
    if extra:
        problems.append(f"users stored that no login answered: {sorted(extra)[:5]}")
    ids = [entry["id"] for entry in users.values()]
    if len(ids) != len(set(ids)) or None in ids:
        problems.append(f"user ids not unique or missing: {sorted(map(str, ids))[:10]}")
    if stats["orphan_sessions"]:
        problems.append(f"{stats['orphan_sessions']} sessions of no stored user")
    if stats["sessions"] != sum(ledger.logins.values()):
        problems.append(f"{stats['sessions']} sessions stored, {sum(ledger.logins.values())} logins answered")
    return problems


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(ledger: Ledger, elapsed: float, clients: int, problems: list[str]) -> str:
    """The run as a Markdown table and lists."""
    everything = [v for values in ledger.latencies.values() for v in values]
    total = len(everything) + sum(ledger.errors.values())
    errors, logins = sum(ledger.errors.values()), sum(ledger.logins.values())
    lines = [
        f"{clients} concurrent clients for {elapsed:.1f} s: {total} requests, {total / elapsed:.0f} "
        f"requests/s, {errors} errors; {len(ledger.logins)} users, {logins} logins.",
        "",
        "| operation | requests | req/s | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for operation, values in [*sorted(ledger.latencies.items()), ("all", everything)]:
        if values:
            cells = [len(values), f"{len(values) / elapsed:.1f}", f"{statistics.median(values):.1f}"]
            cells += [f"{percentile(values, p):.1f}" for p in (0.95, 0.99)] + [f"{max(values):.1f}"]
            lines.append(f"| {operation} | " + " | ".join(map(str, cells)) + " |")
    lines += ["", "Errors: " + (", ".join(f"{k} x{v}" for k, v in ledger.errors.items()) or "none")]
    verdict = "every answered login's user and session stored exactly once, nothing else"
    lines += ["Storage check: " + (verdict if not problems else "FAILED")]
    lines += [f"- {problem}" for problem in problems[:20]]
    return "\n".join(lines)


def stack_env() -> dict[str, str]:
    """Fresh local settings; the login limits are lifted, since this run hammers few users on purpose."""
    return {
        "STAGE": "local",
        "WX_APPID": "wx-stress",
        "WX_SECRET": secrets.token_urlsafe(24),
        "JWT_SECRET": secrets.token_urlsafe(48),
        "SESSION_KEY_ENCRYPTION_KEY": base64.b64encode(secrets.token_bytes(32)).decode(),
        "LOGIN_LIMIT_PER_OPENID": "0",
        "LOGIN_FAILURE_LIMIT_PER_IP": "0",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--users", type=int, default=60, help="distinct WeChat users the clients log in as")
    args = parser.parse_args(argv)
    seconds = min(args.seconds, MAX_SECONDS)
    with tempfile.TemporaryDirectory() as tmp, running_stack(stack_env(), Path(tmp) / "server.log") as stack:
        ledger, elapsed = asyncio.run(drive(stack.url, args.clients, seconds, args.users))
        stats = httpx.get(f"{stack.url}{STATS_PATH}", timeout=30).json()
        leaked = [s for s in (*stack.simulator.session_keys.values(),) if s in stack.logs()]
    problems = check_storage(ledger, stats)
    if leaked:
        problems.append(f"{len(leaked)} session_keys in the server's log")
    print(report(ledger, elapsed, args.clients, problems), flush=True)
    return 1 if problems or ledger.errors else 0


if __name__ == "__main__":
    sys.exit(main())
