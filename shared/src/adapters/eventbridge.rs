//! The EventBridge adapter of the event-bus port.
