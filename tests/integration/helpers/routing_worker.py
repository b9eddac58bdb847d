"""One engine process in the routing concurrency test: places calls and settles them.

Run as ``python routing_worker.py URL WORKER CALLS``. Prints one JSON line
with what happened to each call it placed.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys

from routing.redis_router import RedisRouter


async def main(url: str, worker: int, calls: int) -> None:
    router = RedisRouter.connect(url, connections=16)
    rng = random.Random(worker)
    outcome: dict[str, str] = {}

    async def call(index: int) -> None:
        call_id = f"w{worker}-c{index}"
        ticket = await router.enqueue(call_id, f"q{index % 5}", {}, rng.randint(0, 3))
        for _ in range(3):
            try:
                assignment = await asyncio.wait_for(router.wait(ticket), 20)
            except TimeoutError:
                await router.abandon(ticket)
                outcome[call_id] = "abandoned"
                return
            roll = rng.random()
            if roll < 0.1:
                await router.missed(assignment)  # goes back to the head of its queue
                await router.resume(assignment.agent_id)
                continue
            if roll < 0.15:
                await router.abandon(ticket)  # hung up while the agent's phone rang
                outcome[call_id] = "abandoned"
                return
            await router.connected(assignment)
            await asyncio.sleep(rng.random() * 0.01)
            await router.completed(assignment)
            outcome[call_id] = "completed"
            return
        await router.abandon(ticket)
        outcome[call_id] = "abandoned"

    await asyncio.gather(*(call(i) for i in range(calls)))
    await router.close()
    print(json.dumps(outcome))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
