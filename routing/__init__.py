"""Skill-based routing: agents, queues, matching and live agent state.

``routing/ROUTING.md`` is the definition; ``routing.types`` its value types and
the ``Router`` protocol; ``routing.reference`` the executable specification
(``routing.memory`` runs it in the process); ``routing.redis`` the store shared
by every engine process, its scripts in ``routing/lua/``; ``routing.kpis`` and
``routing.erlang`` read the event stream. Imports nothing from ``ivr`` or
``speech``.
"""
