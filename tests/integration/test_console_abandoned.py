"""The calls page's abandoned calls over HTTP on a real Redis and the emulated AMI: the list
(who, when, queue, wait, what happened since), scopes, and a callback from it that the
engine's callback worker places (the agent first, then the caller)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from html import unescape
from typing import Any

import pytest

from ivr.ami import AmiClient, AmiConfig
from ivr.centre.callbacks import CallbackWorker
from ivr.centre.supervise import Supervisors
from ivr.config import Settings
from ivr.console.abandoned import FRESH
from ivr.testing import AsteriskEmulator
from routing.redis import RedisRouter
from tests.integration.helpers import console_admin
from tests.integration.helpers.console_admin import HTML, app_for, audit, browser, log_in

router, users, hashed, settings = (
    console_admin.router,
    console_admin.users,
    console_admin.hashed,
    console_admin.settings,
)


class Centre:
    def __init__(self, router: RedisRouter, emulator: AsteriskEmulator, ami: AmiClient) -> None:
        self.router = router
        self.emulator = emulator
        self.ami = ami
        self.tickets: dict[str, str] = {}

    async def abandon(self, call: str, queue: str, caller: str, wait: float = 0.3) -> str:
        """A caller waits ``wait`` seconds in ``queue``, then hangs up; the ticket's id."""
        ticket = await self.router.enqueue(call, queue, {queue: 1}, customer=caller)
        await asyncio.sleep(wait)
        await self.router.abandon(ticket, "caller")
        self.tickets[call] = str(ticket.id)
        return str(ticket.id)


@pytest.fixture
async def centre(router: RedisRouter) -> AsyncIterator[Centre]:
    """Four abandoned calls (nobody logged in): two callable, one off the allow-list, one
    with no number; the emulated Asterisk's AMI for the callbacks."""
    emulator = AsteriskEmulator()
    server = await emulator.start_ami()
    for endpoint in ("PJSIP/1001", "PJSIP/1003"):
        emulator.pbx.add_endpoint(endpoint)
    emulator.pbx.add_endpoint("PJSIP/5551234@trunk", outcome="answer", talk=0.3)
    ami = AmiClient(
        AmiConfig(port=server.port, username="ivr", secret="ivr-secret", ping_interval=0)
    )
    await ami.connect()
    built = Centre(router, emulator, ami)
    await built.abandon("call-1", "sales", "5551234", wait=1.2)
    await built.abandon("call-2", "tv", "5559999")
    await built.abandon("call-3", "sales", "0701234567")
    await built.abandon("call-4", "sales", "")
    try:
        yield built
    finally:
        await ami.close()
        await emulator.close()


@pytest.fixture
def app(router: RedisRouter, settings: Settings, centre: Centre) -> Any:
    return app_for(router, settings, Supervisors(router, centre.ami))


def row(page: str, ticket: str) -> str:
    return unescape(page.split(f'id="abandoned-{ticket}"')[1].split("</tr>", maxsplit=1)[0])


async def call_back(http: Any, csrf: str, ticket: str, **headers: str) -> Any:
    return await http.post(
        f"/console/calls/abandoned/{ticket}/callback", data={"csrf": csrf}, headers=headers
    )


class TestList:
    async def test_who_when_where_and_how_long(self, app: Any, centre: Centre) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            page = (await http.get("/console/calls/abandoned", headers=HTML)).text
            calls = await http.get("/console/calls", headers=HTML)
        first = row(page, centre.tickets["call-1"])
        assert "5551234" in first and "sales" in first and "hung up while waiting" in first
        assert "1 s" in first and "Call back" in first
        assert "not on the allow-list" in row(page, centre.tickets["call-3"])
        assert "no number to call" in row(page, centre.tickets["call-4"])
        assert page.index(f'id="abandoned-{centre.tickets["call-4"]}"') < page.index(
            f'id="abandoned-{centre.tickets["call-1"]}"'
        )
        assert 'hx-get="/console/calls/abandoned"' in calls.text  # the calls page loads it

    async def test_the_fragment_for_the_calls_page(self, app: Any, centre: Centre) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            reply = await http.get("/console/calls/abandoned", headers={"HX-Request": "true"})
        assert reply.text.startswith('<div id="abandoned-list">') and "<html" not in reply.text

    async def test_a_caller_who_called_again_says_so(self, app: Any, centre: Centre) -> None:
        await centre.router.enqueue("call-5", "sales", {"sales": 1}, customer="5551234")
        async with browser(app) as http:
            await log_in(http, "ada")
            page = (await http.get("/console/calls/abandoned", headers=HTML)).text
        assert "called again at" in row(page, centre.tickets["call-1"])


class TestAccess:
    async def test_roles_and_scope(self, app: Any, router: RedisRouter, centre: Centre) -> None:
        """Agents and viewers are refused; a supervisor of the tv queue sees its call only
        and may not call back a sales caller."""
        sales = centre.tickets["call-1"]
        async with browser(app) as http:
            for name in ("ann", "wall"):
                csrf = await log_in(http, name)
                reply = await http.get("/console/calls/abandoned", headers=HTML)
                assert reply.status_code == 403
                assert (await call_back(http, csrf, sales)).status_code == 403
                await http.post("/console/logout", data={"csrf": csrf})
            csrf = await log_in(http, "tia")
            page = (await http.get("/console/calls/abandoned", headers=HTML)).text
            assert f'id="abandoned-{centre.tickets["call-2"]}"' in page
            assert f'id="abandoned-{sales}"' not in page
            reply = await call_back(http, csrf, sales)
        assert reply.status_code == 403 and "outside tia's view" in reply.json()["error"]
        assert await audit(router, "callback.request") == []
        assert [a["actor"] for a in await audit(router, "refused")][-1] == "tia"

    async def test_a_callback_needs_the_csrf_token(
        self, app: Any, router: RedisRouter, centre: Centre
    ) -> None:
        async with browser(app) as http:
            await log_in(http, "ada")
            reply = await http.post(f"/console/calls/abandoned/{centre.tickets['call-1']}/callback")
            forged = await call_back(http, "forged", centre.tickets["call-1"])
        assert reply.status_code == 403 and forged.status_code == 403
        assert await audit(router, "callback.request") == []

    async def test_only_allowed_numbers_known_calls_and_an_engine_with_ami(
        self, app: Any, router: RedisRouter, settings: Settings, centre: Centre
    ) -> None:
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            off_list = await call_back(http, csrf, centre.tickets["call-3"])
            no_number = await call_back(http, csrf, centre.tickets["call-4"])
            unknown = await call_back(http, csrf, "999999")
        assert off_list.status_code == 422 and "allow-list" in off_list.json()["error"]
        assert no_number.status_code == 422 and unknown.status_code == 404
        async with browser(app_for(router, settings)) as http:  # no AMI
            csrf = await log_in(http, "ada")
            page = (await http.get("/console/calls/abandoned", headers=HTML)).text
            reply = await call_back(http, csrf, centre.tickets["call-1"])
        assert "callbacks need AMI" in row(page, centre.tickets["call-1"])
        assert reply.status_code == 503 and "AMI" in reply.json()["error"]
        assert await audit(router, "callback.request") == []


class TestCallBack:
    async def test_the_worker_rings_the_agent_then_the_caller(
        self, app: Any, router: RedisRouter, centre: Centre
    ) -> None:
        """The call is queued again as a callback (never reserved for a live caller, though
        an agent is free), asked twice it is one callback, and the engine's callback worker
        places it: ann's phone first, then 5551234; the list says how it went."""
        await router.login("ann")  # free at once: the callback must still not be a live call
        ticket = centre.tickets["call-1"]
        async with browser(app) as http:
            csrf = await log_in(http, "ada")
            reply = await call_back(http, csrf, ticket)
            assert reply.status_code == 303
            assert reply.headers["location"] == "/console/calls/abandoned"
            page = (await http.get("/console/calls/abandoned", headers=HTML)).text
            assert "Callback of 5551234 queued in sales" in page
            assert "callback under way" in row(page, ticket)
            again = await call_back(http, csrf, ticket)
            assert again.status_code == 409
        events = [e for _, e in await router.events(time.time() - 60)]
        mine = [e for e in events if e.get("call") == f"callback:{ticket}"]
        new = mine[0]["ticket"]
        kinds = [e["event"] for e in events if e.get("ticket") == new]
        assert kinds[:3] == ["enqueued", "callback_requested", "requalified"], kinds
        [asked] = await audit(router, "callback.request")
        assert (asked["actor"], asked["queue"], asked["ticket"]) == ("ada", "sales", ticket)

        worker = CallbackWorker(
            router, centre.ami, allow=("555*",), ring_timeout=5, customer_timeout=5
        )
        assignment = await asyncio.wait_for(router.next_callback(), 10)
        assert (assignment.agent_id, assignment.callback) == ("ann", "5551234")
        assert await asyncio.wait_for(worker.place(assignment), 20) == "completed"
        [(agent_leg, variables)] = centre.emulator.pbx.originated
        assert agent_leg.startswith("PJSIP/1001") and variables["__IVR_QUEUE"] == "sales"
        async with browser(app) as http:  # the list is read again within FRESH seconds
            await log_in(http, "ada")
            deadline = time.monotonic() + FRESH + 5
            while "called back at" not in row(page, ticket):
                assert time.monotonic() < deadline, row(page, ticket)
                await asyncio.sleep(0.2)
                page = (await http.get("/console/calls/abandoned", headers=HTML)).text
        assert "Call back" not in row(page, ticket)

    async def test_from_the_calls_page_with_htmx(
        self, app: Any, router: RedisRouter, centre: Centre
    ) -> None:
        """htmx posts from the calls page: the list comes back with the note, in place."""
        async with browser(app) as http:
            csrf = await log_in(http, "pat")
            reply = await call_back(http, csrf, centre.tickets["call-1"], **{"HX-Request": "true"})
            refused = await call_back(
                http, csrf, centre.tickets["call-3"], **{"HX-Request": "true"}
            )
        assert reply.status_code == 200 and reply.text.startswith('<div id="abandoned-list">')
        assert "Callback of 5551234 queued in sales" in reply.text
        assert refused.status_code == 422 and 'class="error"' in refused.text
        assert [a["actor"] for a in await audit(router, "callback.request")] == ["pat"]
