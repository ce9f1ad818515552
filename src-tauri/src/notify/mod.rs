//! Notifiers: desktop popups and test recorders.
