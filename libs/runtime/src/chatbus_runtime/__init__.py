"""Runtime plumbing shared by chatbus services: settings, logging, telemetry, NATS, Postgres.

No business logic lives here.
"""
