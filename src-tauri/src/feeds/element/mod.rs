//! ELEMENT IoT WebSocket feed.
