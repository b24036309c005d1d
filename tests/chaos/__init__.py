"""The chaos suite: faults injected into private PostgreSQL, Redis and RabbitMQ instances
under load, with every request recorded and the outcome checked against the database."""
