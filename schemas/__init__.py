"""The contracts: pydantic v2 models for every REST body and every Kafka message.

One source of truth: the API validates requests with these models, the worker parses topic
messages with them, and ``python -m schemas.export`` writes their JSON Schemas so other systems
can produce requests straight to the operations topic.
"""

SCHEMA_VERSION = 1
