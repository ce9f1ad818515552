//! The popup worker: the notifier runs on its own thread, in order, so a slow D-Bus never
//! stalls storage.

use std::sync::mpsc::{self, SendError};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::notify::{Notifier, Popup};

enum Job {
    Show(Popup),
    Close(String),
    Flush(oneshot::Sender<()>),
}

/// The engine's end of the popup thread. A thread that could not start (or died) makes
/// every job a no-op: popups are lost, storage goes on.
pub(super) struct Popups {
    jobs: mpsc::Sender<Job>,
}

impl Popups {
    /// Starts the thread that runs `notifier`.
    pub(super) fn start(notifier: Arc<dyn Notifier>) -> Self {
        let (tx, rx) = mpsc::channel::<Job>();
        let spawned = std::thread::Builder::new()
            .name("popups".into())
            .spawn(move || {
                let mut failing = false;
                while let Ok(job) = rx.recv() {
                    match job {
                        Job::Show(p) => match notifier.show(&p) {
                            Ok(()) => failing = false,
                            Err(e) => {
                                // Said once per outage, not once per popup.
                                if !failing {
                                    tracing::warn!("{e}");
                                }
                                failing = true;
                            }
                        },
                        Job::Close(tag) => notifier.close(&tag),
                        Job::Flush(done) => {
                            let _ = done.send(());
                        }
                    }
                }
            });
        if let Err(e) = spawned {
            tracing::error!("no thread for popups: {e}");
        }
        Popups { jobs: tx }
    }

    pub(super) fn show(&self, popup: Popup) {
        let _ = self.jobs.send(Job::Show(popup));
    }

    pub(super) fn close(&self, tag: String) {
        let _ = self.jobs.send(Job::Close(tag));
    }

    /// Answers `done` once the thread did everything asked before (at once without a thread).
    pub(super) fn flush(&self, done: oneshot::Sender<()>) {
        if let Err(SendError(Job::Flush(done))) = self.jobs.send(Job::Flush(done)) {
            let _ = done.send(());
        }
    }
}
