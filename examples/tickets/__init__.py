"""An example ticket system (seed ``003_*``) that plugs into Bulkops as the owner of the
``ticket:*`` job types: its own SQLite database, tenants and permissions, Kafka workers written
with ``bulkops.jobs``, and an HTTP handler for the HTTP executor. Bulkops never touches its
database. ``python -m examples.tickets --help``."""
