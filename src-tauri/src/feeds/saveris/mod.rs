//! Saveris Push API feed (STOMP 1.2 over WebSocket).
