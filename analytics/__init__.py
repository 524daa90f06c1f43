"""ClickHouse: DDL, the sink writer and the history queries. All SQL of the project lives here."""
