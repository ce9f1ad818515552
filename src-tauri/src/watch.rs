//! The headless root: feeds -> engine -> stdout JSON lines.
