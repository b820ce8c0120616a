"""The connectors' loops, run beside the dispatcher by `youhu worker` and by the demo's web process.

Dependencies point one way (geo ← dispatch ← connectors), so the dispatcher does not know these
loops: the composition roots (``dispatch.cli`` for `youhu worker`, ``web.app``'s lifespan on the
in-process bus) call :func:`run_connectors` next to ``Runtime.run_dispatcher``.

Outbound (this module): the write-back planner (case deltas → deliveries) and the delivery worker.
"""

from __future__ import annotations

import asyncio

from connectors.writeback.planner import Planner
from connectors.writeback.worker import Backoff, DeliveryWorker
from dispatch.runtime import Runtime


def delivery_worker(rt: Runtime) -> DeliveryWorker:
    s = rt.settings
    return DeliveryWorker(
        rt.engine,
        s.source_endpoints,
        batch=s.writeback_batch,
        timeout_s=s.writeback_timeout_s,
        backoff=Backoff(s.writeback_backoff_base_s, s.writeback_backoff_max_s),
        max_age_s=s.writeback_max_age_s,
        lease_s=s.writeback_lease_s,
    )


async def run_connectors(rt: Runtime, stop: asyncio.Event) -> None:
    """The outbound loops until ``stop``: plan deliveries from youhu.cases.v1, and deliver them."""
    s = rt.settings
    planner = Planner(rt.engine)
    worker = delivery_worker(rt)
    await asyncio.gather(
        asyncio.create_task(
            planner.run(
                rt.bus,
                rt.topics.cases,
                s.writeback_consumer_group,
                stop,
                deadletter_topic=rt.topics.deadletter,
            ),
            name="writeback-planner",
        ),
        asyncio.create_task(worker.run(stop, idle_s=s.writeback_interval_s), name="delivery-worker"),
    )
