"""The chaos schedule (bench/chaos.py): faults in random order, a Connect kill right after a broker
restart among them, counts as planned."""

from __future__ import annotations

import random

import pytest

from bench.chaos import CONNECT_AFTER_BROKER, ChaosError, Plan, schedule


def _counts(kinds: list[str]) -> dict[str, int]:
    paired = kinds.count(CONNECT_AFTER_BROKER)
    return {
        "connect": kinds.count("connect") + paired,
        "broker": kinds.count("broker") + paired,
        "postgres": kinds.count("postgres"),
        "transformer": kinds.count("transformer"),
        "paired": paired,
    }


def test_the_full_plan_draws_every_fault_with_one_connect_kill_right_after_a_broker_restart() -> None:
    plan = Plan.full(None, seed=1)
    for seed in range(20):
        kinds = [fault.kind for fault in schedule(plan, random.Random(seed))]
        assert _counts(kinds) == {"connect": 3, "broker": 2, "postgres": 2, "transformer": 15, "paired": 1}


def test_broker_restarts_are_not_held_back_until_the_connect_kills_are_done() -> None:
    plan = Plan.full(None, seed=1)
    orders = set()
    for seed in range(30):
        infra = [f.kind for f in schedule(plan, random.Random(seed)) if f.kind != "transformer"]
        orders.add(tuple(infra))
        if "broker" in infra and "connect" in infra:
            orders.add(("broker first",) if infra.index("broker") < infra.index("connect") else ())
    assert ("broker first",) in orders  # the old workaround sorted every broker restart last
    assert len(orders) > 10


def test_fault_counts_can_be_overridden_for_a_quick_run() -> None:
    plan = Plan.short(1000, seed=3).with_counts("transformer=2,connect=1,broker=1,postgres=1")
    assert (plan.transformer_kills, plan.connect_kills, plan.broker_restarts) == (2, 1, 1)
    assert plan.connect_kills_after_broker_restart == 1
    with pytest.raises(ChaosError, match="unknown fault 'zookeeper'"):
        plan.with_counts("zookeeper=1")
