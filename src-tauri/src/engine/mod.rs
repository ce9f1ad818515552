//! The engine: dedupe, history, rules, decisions.
