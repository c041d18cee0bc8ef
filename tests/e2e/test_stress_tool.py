"""`make stress` itself: a short run passes, and its storage check catches what it is there to catch."""

from __future__ import annotations

from stress.run import Ledger, check_storage, main


def test_a_short_stress_run_passes_its_own_checks(capsys):
    assert main(["--seconds", "2", "--clients", "4", "--users", "5"]) == 0
    out = capsys.readouterr().out
    assert "| all |" in out and "Errors: none" in out and "stored exactly once" in out


def ledger(**logins: int) -> Ledger:
    result = Ledger()
    for number, (openid, count) in enumerate(logins.items(), start=1):
        result.logins[openid] = count
        result.ids[openid] = {number}
        result.new_users[openid] = 1
    return result


def stats(users: dict[str, tuple[int | None, int, int]], orphans: int = 0) -> dict[str, object]:
    entries = {openid: {"id": i, "sessions": s, "live": live} for openid, (i, s, live) in users.items()}
    return {"users": entries, "sessions": sum(s for _, s, _ in users.values()), "orphan_sessions": orphans}


def test_the_storage_check_finds_lost_duplicated_and_stray_records():
    told = ledger(a=2, b=1)
    assert check_storage(told, stats({"a": (1, 2, 2), "b": (2, 1, 1)})) == []
    assert any("no user stored" in p for p in check_storage(told, stats({"a": (1, 2, 2)})))
    assert any("sessions stored" in p for p in check_storage(told, stats({"a": (1, 3, 3), "b": (2, 1, 1)})))
    assert any("answered ids" in p for p in check_storage(told, stats({"a": (1, 2, 2), "b": (1, 1, 1)})))
    assert any(
        "no login answered" in p
        for p in check_storage(told, stats({"a": (1, 2, 2), "b": (2, 1, 1), "c": (3, 0, 0)}))
    )
    assert any(
        "orphan" in p or "no stored user" in p
        for p in check_storage(told, stats({"a": (1, 2, 2), "b": (2, 1, 1)}, orphans=1))
    )
    told.logouts["a"] = 1
    assert any("live sessions" in p for p in check_storage(told, stats({"a": (1, 2, 2), "b": (2, 1, 1)})))
    told.new_users["b"] = 2
    assert any("is_new_user" in p for p in check_storage(told, stats({"a": (1, 2, 1), "b": (2, 1, 1)})))
