"""The console's live data over a real WebSocket (uvicorn, the ``websockets`` client),
from a real Redis and the emulated Asterisk's AGI and AMI: a snapshot, then deltas as
a call waits, rings, is answered, held and ended; a resume from a sequence number; a
supervisor who never receives another team's agent; refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from ivr.api import build_api
from ivr.auth import TokenBook
from ivr.config import Settings
from ivr.console.access import Scope, User
from ivr.console.board import Board
from ivr.console.fanout import visible
from ivr.console.users import UserRecord, UserStore, hash_password
from routing.config import QueueConfig
from routing.memory import Agent
from routing.redis import RedisRouter
from tests.integration.helpers.console_rig import Mirror, Rig, console_rig, dial

PASSWORD = "a long enough secret"


@pytest.fixture
async def rig(redis_url: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with console_rig(redis_url, tmp_path, recheck=0.3) as made:
        yield made


def _waiting(data: dict[str, Any]) -> bool:
    return any(c["stage"] == "waiting" for c in data["calls"].values())


class TestLiveCall:
    async def test_snapshot_then_deltas_as_a_call_queues_and_an_agent_answers(
        self, rig: Rig
    ) -> None:
        """The browser sees the call wait with its position, ring ann, connect, go on
        hold and back, and ann wrap up with one call handled; states from the events."""
        await rig.router.pause("ann", "lunch")
        await rig.router.pause("bob", "training")
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            first = await board.next()
            assert first["type"] == "snapshot" and first["user"]["role"] == "admin"
            assert abs(first["now"] - time.time()) < 2  # the age of the data is shown
            assert board.agent("ann")["state"] == "paused"
            assert board.agent("ann")["reason"] == "lunch"
            assert board.data["queues"]["sales"]["waiting"] == 0
            call = asyncio.ensure_future(rig.call(callerid="5551234", dial=dial(talk=3)))
            await board.until(_waiting)
            (waiting,) = board.data["calls"].values()
            assert (waiting["queue"], waiting["position"]) == ("sales", 1)
            assert board.data["queues"]["sales"]["waiting"] == 1
            await rig.router.resume("ann")
            await board.until(lambda d: d["agents"]["ann"]["state"] == "ringing")
            await board.until(lambda d: d["agents"]["ann"]["state"] == "on_call")
            ann = board.agent("ann")
            assert ann["call"] == waiting["id"] and ann["queue"] == "sales"
            assert ann["caller"] == "5551234"
            assert board.data["calls"][waiting["id"]]["agent"] == "ann"  # who took whom
            rig.hold("PJSIP/1001", True)
            await board.until(lambda d: d["agents"]["ann"]["state"] == "on_hold")
            rig.hold("PJSIP/1001", False)
            await board.until(lambda d: d["agents"]["ann"]["state"] == "on_call")
            await asyncio.wait_for(call, 30)
            await board.until(lambda d: d["agents"]["ann"]["state"] in ("wrap_up", "available"))
            await board.until(lambda d: d["queues"]["sales"]["handled"] == 1)
            assert board.data["calls"] == {}
            assert board.agent("ann")["handled"] == 1 and board.agent("ann")["aht"] > 2
            assert board.data["queues"]["sales"]["answered"] == 1
            deltas = [m for m in board.messages if m["type"] == "delta"]
            assert deltas and all(m["seq"] > first["seq"] for m in deltas)
            shown = [
                record["state"]
                for m in deltas
                for kind, key, record in m["ops"]
                if (kind, key) == ("agent", "ann") and record
            ]
            # Never "available" while the call was up, never hold shown as wrap-up.
            up = shown[shown.index("on_call") : shown.index("on_call", shown.index("on_hold"))]
            assert "available" not in up and "wrap_up" not in up

    async def test_a_long_wait_raises_an_alert_and_the_answer_clears_it(self, rig: Rig) -> None:
        """A caller who waits past the queue's threshold is an alert until answered."""
        rig.aggregator.board.thresholds = type(rig.aggregator.board.thresholds)(wait=0.5)
        await rig.router.pause("ann", "lunch")
        await rig.router.pause("bob", "lunch")
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.next()
            call = asyncio.ensure_future(rig.call(callerid="5551234", dial=dial(talk=0.5)))
            await board.until(lambda d: any(a["kind"] == "wait" for a in d["alerts"].values()))
            await rig.router.resume("bob")
            await board.until(lambda d: not any(a["kind"] == "wait" for a in d["alerts"].values()))
            await asyncio.wait_for(call, 30)


class TestResume:
    async def test_reconnect_resumes_from_its_sequence(self, rig: Rig) -> None:
        """A client that comes back with its epoch and sequence gets only what it
        missed; a sequence no longer kept (or from another process) gets a snapshot."""
        await rig.aggregator.ensure_started()
        rig.aggregator.ivr_step("1.7", "main", "menu", caller="5551234")
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.until(lambda d: "1.7" in d["calls"])
        await rig.router.pause("bob", "coffee")
        rig.aggregator.ivr_left("1.7")  # the caller hung up meanwhile
        await asyncio.sleep(0.3)
        query = f"?epoch={board.epoch}&since={board.seq}"
        async with rig.connect("ada", query) as socket:
            board.socket = socket
            message = await board.next()
            assert message["type"] == "delta"
            await board.until(lambda d: d["agents"]["bob"]["state"] == "paused")
            assert board.agent("bob")["reason"] == "coffee"
            assert "1.7" not in board.data["calls"]
        async with rig.connect("ada", f"?epoch=0000&since={board.seq}") as socket:
            assert (await Mirror(socket).next())["type"] == "snapshot"
        rig.aggregator.history.clear()
        async with rig.connect("ada", f"?epoch={board.epoch}&since=0") as socket:
            assert (await Mirror(socket).next())["type"] == "snapshot"

    async def test_a_quiet_socket_ticks_with_the_server_time(self, rig: Rig) -> None:
        async with rig.connect("ada") as socket:
            board = Mirror(socket)
            await board.next()
            tick = await board.next(3)
            assert tick["type"] == "tick" and tick["seq"] == board.seq
            assert abs(tick["now"] - time.time()) < 2


class TestScope:
    async def test_a_supervisor_never_receives_another_teams_agent(self, rig: Rig) -> None:
        """nina supervises team north (ann): bob's changes never reach her socket."""
        async with rig.connect("nina") as socket:
            board = Mirror(socket)
            await board.next()
            assert set(board.data["agents"]) == {"ann"}
            await rig.router.pause("bob", "lunch")
            await rig.router.pause("ann", "lunch")
            await board.until(lambda d: d["agents"]["ann"]["state"] == "paused")
            await rig.router.resume("bob")
            await rig.router.resume("ann")
            await board.until(lambda d: d["agents"]["ann"]["state"] == "available")
        for message in board.messages:
            assert "bob" not in message.get("agents", {})
            assert all(key != "bob" for _, key, _ in message.get("ops", []))

    async def test_an_agent_sees_their_own_state_and_queue_only(self, rig: Rig) -> None:
        async with rig.connect("ann") as socket:
            board = Mirror(socket)
            await board.next()
            assert set(board.data["agents"]) == {"ann"}
            assert set(board.data["queues"]) == {"sales"}
            await rig.router.pause("bob", "lunch")
            await rig.router.pause("ann", "break")
            await board.until(lambda d: d["agents"]["ann"]["state"] == "paused")
        assert all("bob" not in str(m) for m in board.messages)

    async def test_a_scope_change_on_a_live_socket_takes_effect(self, rig: Rig) -> None:
        """Scope is checked per message, not only at connect: narrowed to team south,
        nina's socket gets a new snapshot without ann, and ann's changes stop."""
        async with rig.connect("nina") as socket:
            board = Mirror(socket)
            await board.next()
            rig.users["nina"] = User("nina", "supervisor", Scope(teams=frozenset({"south"})))
            await board.until(lambda d: set(d["agents"]) == {"bob"})
            seen = len(board.messages)
            await rig.router.pause("ann", "lunch")
            await rig.router.pause("bob", "lunch")
            await board.until(lambda d: d["agents"]["bob"]["state"] == "paused")
        assert all("ann" not in str(m) for m in board.messages[seen:])


class TestRefusals:
    async def test_no_session_is_closed_with_4401(self, rig: Rig) -> None:
        for who in (None, "nobody"):
            async with rig.connect(who) as socket:
                with pytest.raises(ConnectionClosed) as closed:
                    await socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401

    async def test_a_session_that_ends_closes_the_live_socket(self, rig: Rig) -> None:
        async with rig.connect("ada") as socket:
            await Mirror(socket).next()
            del rig.users["ada"]
            with pytest.raises(ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(socket.recv(), 5)
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401


class TestBoard:
    """The board alone, fed events as the routing stream writes them."""

    @staticmethod
    def _board() -> Board:
        board = Board()
        board.set_queues({"sales": QueueConfig.model_validate({"skills": {"sales": 1}})})
        board.set_agents(
            [{"id": "ann", "endpoint": "PJSIP/1001", "state": "available",
              "skills": {"sales": 5, "team.north": 1}}]
        )  # fmt: skip
        return board

    def test_a_days_figures_per_agent(self) -> None:
        """Pause time, calls handled and missed and the handle time, reset at midnight."""
        board = self._board()
        take = board.take
        take(100.0, {"event": "state", "agent": "ann", "before": "available", "after": "paused",
                     "reason": "lunch"})  # fmt: skip
        take(160.0, {"event": "state", "agent": "ann", "before": "paused", "after": "available"})
        take(200.0, {"event": "enqueued", "ticket": "1", "call": "c1", "queue": "sales"})
        take(201.0, {"event": "reserved", "ticket": "1", "call": "c1", "queue": "sales",
                     "agent": "ann"})  # fmt: skip
        take(215.0, {"event": "missed", "ticket": "1", "call": "c1", "queue": "sales",
                     "agent": "ann", "fault": "1"})  # fmt: skip
        take(220.0, {"event": "connected", "ticket": "1", "call": "c1", "queue": "sales",
                     "agent": "ann", "at": "220.0"})  # fmt: skip
        take(310.0, {"event": "completed", "ticket": "1", "call": "c1", "queue": "sales",
                     "agent": "ann"})  # fmt: skip
        board.settle(320.0)  # the day's figures: routing.kpis over the queue's events
        ann = board.record(("agent", "ann"))
        assert ann is not None
        assert (ann["pause_total"], ann["handled"], ann["missed"], ann["aht"]) == (60, 1, 1, 90)
        queue = board.record(("queue", "sales"))
        assert queue is not None and (queue["handled"], queue["asa"]) == (1, 20)
        board.new_day()
        board.settle(400.0)
        ann = board.record(("agent", "ann"))
        assert ann is not None and (ann["handled"], ann["missed"], ann["pause_total"]) == (0, 0, 0)

    def test_figures_follow_the_event_that_moves_them_at_the_next_settle(self) -> None:
        """An answer and an end move the day's figures at the next settle, however soon
        after the last (the board's ``kpi_every`` is a minute here); the agent's tile and
        the queue count the same handled calls: answered, then completed."""
        board = Board(kpi_every=60.0)
        board.set_queues({"sales": QueueConfig.model_validate({"skills": {"sales": 1}})})
        board.set_agents([{"id": "ann", "endpoint": "PJSIP/1001", "state": "available",
                           "skills": {"sales": 5}}])  # fmt: skip
        board.changes()
        call = {"ticket": "1", "call": "c1", "queue": "sales", "agent": "ann"}
        shown: list[tuple[object, ...]] = []

        def step(at: float, event: dict[str, str]) -> None:
            board.take(at, event)
            board.settle(at + 0.05)
            changed = board.changes()
            assert ("queue", "sales") in changed
            if event["event"] == "completed":  # ann's handled calls: her tile is sent
                assert ("agent", "ann") in changed
            ann, sales = board.record(("agent", "ann")), board.record(("queue", "sales"))
            assert ann is not None and sales is not None
            shown.append((event["event"], ann["handled"], sales["answered"], sales["handled"]))

        step(100.0, {"event": "enqueued", "ticket": "1", "call": "c1", "queue": "sales"})
        step(100.2, {"event": "reserved", **call})
        step(100.4, {"event": "connected", **call, "at": "100.4"})
        step(100.6, {"event": "completed", **call})
        assert shown == [
            ("enqueued", 0, 0, 0),
            ("reserved", 0, 0, 0),
            ("connected", 0, 1, 0),  # on the line: answered, not yet handled
            ("completed", 1, 1, 1),
        ]

    def test_a_change_that_moves_no_figure_waits_for_kpi_every(self) -> None:
        """A requalified call does not have the day worked out again before ``kpi_every``."""
        board = Board(kpi_every=60.0)
        board.set_queues({"sales": QueueConfig.model_validate({"skills": {"sales": 1}})})
        board.take(100.0, {"event": "enqueued", "ticket": "1", "call": "c1", "queue": "sales"})
        board.settle(100.0)
        board.take(101.0, {"event": "requalified", "ticket": "1", "call": "c1",
                           "queue": "sales", "priority": "5"})  # fmt: skip
        board.settle(101.0)
        assert board.queues["sales"].computed == 100.0
        board.settle(160.0)
        assert board.queues["sales"].computed == 160.0

    def test_calls_in_the_ivr_only_for_a_scope_of_every_queue(self) -> None:
        board = self._board()
        board.ivr_step("c9", "main", "menu", 10.0, caller="5551234")
        record = board.record(("call", "c9"))
        assert record is not None and record["path"] == ["menu"]
        everyone = User("ada", "admin", Scope(queues=frozenset({"tv"})))
        teams = User("nina", "supervisor", Scope(teams=frozenset({"north"})))
        queues = User("quinn", "supervisor", Scope(queues=frozenset({"sales"})))
        agent = User("ann", "agent", Scope(), agent_id="ann")
        seen = [visible(u, ("call", "c9"), record, board) for u in (everyone, teams, queues, agent)]
        assert seen == [True, True, False, False]

    def test_hold_on_the_callers_leg_shows_the_agent_on_hold(self) -> None:
        board = self._board()
        board.take(1.0, {"event": "enqueued", "ticket": "1", "call": "c1", "queue": "sales"})
        board.take(2.0, {"event": "reserved", "ticket": "1", "call": "c1", "agent": "ann",
                         "queue": "sales"})  # fmt: skip
        board.take(2.0, {"event": "state", "agent": "ann", "before": "reserved",
                         "after": "on_call"})  # fmt: skip
        board.take(2.0, {"event": "connected", "ticket": "1", "call": "c1", "agent": "ann",
                         "queue": "sales"})  # fmt: skip
        board.hold("PJSIP/caller-1", "c1", "PJSIP/caller", True, 5.0)
        ann = board.record(("agent", "ann"))
        assert ann is not None and (ann["state"], ann["since"]) == ("on_hold", 5.0)
        board.hold("PJSIP/caller-1", "c1", "PJSIP/caller", False, 9.0)
        ann = board.record(("agent", "ann"))
        assert ann is not None and ann["state"] == "on_call"


class TestMounted:
    """Through the engine's own app (``ivr.api.build_api``): the console's login, its
    session cookie and ``/console/ws``; ``/metrics`` beside ``/health``."""

    async def test_a_logged_in_browser_gets_its_view_and_another_origin_none(
        self, redis_url: str, tmp_path: Path
    ) -> None:
        router = RedisRouter.connect(redis_url)
        await router.redis.flushall()
        await router.start()
        await router.add_agents([Agent("ann", "PJSIP/1001", {"sales": 5, "team.north": 1})])
        users = UserStore(tmp_path / "users.json")
        users.put(UserRecord("nina", "supervisor", hash_password(PASSWORD)))
        app = build_api(router, TokenBook(), None, Settings(users_file=users.path))
        web = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        )
        task = asyncio.ensure_future(web.serve())
        try:
            while not web.started:
                await asyncio.sleep(0.01)
            base = f"127.0.0.1:{web.servers[0].sockets[0].getsockname()[1]}"
            async with httpx.AsyncClient(base_url=f"http://{base}") as http:
                login = {"name": "nina", "password": PASSWORD}
                reply = await http.post("/console/login", data=login)
                assert reply.status_code == 303, reply.text
                cookie = f"ivr_session={http.cookies['ivr_session']}"
                scraped = await http.get("/metrics")
                assert scraped.status_code == 200 and "ivr_agents" in scraped.text
            url = f"ws://{base}/console/ws"
            own = {"Cookie": cookie, "Origin": f"http://{base}"}
            async with connect(url, additional_headers=own) as socket:
                board = Mirror(socket)
                assert (await board.next())["user"] == {
                    "name": "nina", "role": "supervisor", "agent": None,
                }  # fmt: skip
                assert board.agent("ann")["state"] == "logged_out"
                await router.login("ann")
                await board.until(lambda d: d["agents"]["ann"]["state"] == "available")
            other = {"Cookie": cookie, "Origin": "http://evil.example"}
            async with connect(url, additional_headers=other) as socket:
                with pytest.raises(ConnectionClosed) as closed:
                    await socket.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
        finally:
            web.should_exit = True
            await task
            await router.close()
