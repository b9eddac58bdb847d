"""Skill-based routing: agents, queues, matching and live agent state in Redis.

Imports nothing from ``ivr`` or ``speech``. Filled in by the routing issue.
"""
