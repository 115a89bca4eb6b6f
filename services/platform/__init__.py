"""What every service is built from: database, outbox relay, auth, idempotency, HTTP edges."""
