"""An example marketplace back office (seed ``002_*``: the queue plan of inventory, listing and
notification jobs) that plugs into Bulkops as the owner of its eight job types: its own
SQLite database of inventory items, listings and push devices per tenant, Kafka workers written
with ``bulkops.jobs``, and e-mail through an SMTP server (the provider simulator in dev).
Bulkops never touches its database. ``python -m examples.marketplace --help``."""
