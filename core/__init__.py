"""What the API and the worker share, below both: settings, topic names, release schedules,
webhook signing and the callback-URL guard, and Kafka client logging.

``api`` and ``streams`` import from here (and from ``schemas`` and ``analytics``), never from
each other; the command-line shell in ``bulkops`` sits on top of everything.
"""
