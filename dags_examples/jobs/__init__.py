"""Job modules used by the example DAGs."""
