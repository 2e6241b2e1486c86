//! The trigger decision and the outbox publisher.
