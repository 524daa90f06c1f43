"""The REST API: routes, auth, the Kafka producer and the live status view."""
