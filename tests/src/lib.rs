//! Harness: start and stop real PostgreSQL clusters for the integration tests.
