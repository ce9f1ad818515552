//! The alarm sounds shipped with the app, and the app's own player (issue 21).
//!
//! Three short WAV files made by `scripts/make-sounds.py` from sine tones are built into the
//! binary. A popup that rings names one of them: the desktop notifier passes it to the
//! notification daemon as the `sound-file` hint (the file is written once into the profile's
//! `sounds/` folder, since a hint carries a path), and when the daemon does not announce the
//! `sound` capability (dunst, most tiling desktops) the app plays it itself through
//! [`SoundPlayer`] (rodio on ALSA / WASAPI / CoreAudio).

use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One of the shipped sounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ts_rs::TS)]
#[serde(rename_all = "snake_case")]
pub enum Sound {
    /// Three urgent two-tone beeps (critical alarms by default).
    Alarm,
    /// Two calm beeps (warnings by default).
    Alert,
    /// A gentle rising two-note chime.
    Chime,
}

impl Sound {
    pub const ALL: [Sound; 3] = [Sound::Alarm, Sound::Alert, Sound::Chime];

    pub fn file_name(self) -> &'static str {
        match self {
            Sound::Alarm => "alarm.wav",
            Sound::Alert => "alert.wav",
            Sound::Chime => "chime.wav",
        }
    }

    /// The WAV file's bytes, as built into the binary.
    pub fn bytes(self) -> &'static [u8] {
        match self {
            Sound::Alarm => include_bytes!("../../sounds/alarm.wav"),
            Sound::Alert => include_bytes!("../../sounds/alert.wav"),
            Sound::Chime => include_bytes!("../../sounds/chime.wav"),
        }
    }

    /// The sound as a file in `dir` (written when missing or different), for the
    /// notification's `sound-file` hint.
    pub fn file_in(self, dir: &Path) -> std::io::Result<PathBuf> {
        let path = dir.join(self.file_name());
        let bytes = self.bytes();
        let same = std::fs::metadata(&path).is_ok_and(|m| m.len() == bytes.len() as u64);
        if !same {
            std::fs::create_dir_all(dir)?;
            // Temp file + rename: a daemon reading the path never sees half a file.
            let tmp = dir.join(format!(".{}.tmp", self.file_name()));
            std::fs::write(&tmp, bytes)?;
            std::fs::rename(&tmp, &path)?;
        }
        Ok(path)
    }
}

/// Where the shipped sounds are written for the daemon: the profile's `sounds/` folder.
pub fn sounds_dir() -> PathBuf {
    crate::paths::data_dir().join("sounds")
}

/// Plays sounds on the default audio output. Cheap to clone; playing never blocks the
/// caller.
#[derive(Clone)]
pub struct SoundPlayer {
    jobs: mpsc::Sender<Sound>,
}

/// How long the output device stays open after the last sound (opening it costs ~100 ms,
/// keeping it open all day would hold the device).
const KEEP_OPEN: Duration = Duration::from_secs(10);

impl SoundPlayer {
    /// Starts the player's thread (the output stream is opened on the first sound; rodio's
    /// stream handle must stay on one thread).
    pub fn start() -> SoundPlayer {
        let (tx, rx) = mpsc::channel::<Sound>();
        let spawned = std::thread::Builder::new()
            .name("sounds".into())
            .spawn(move || play_loop(rx));
        if let Err(e) = spawned {
            tracing::warn!("no thread for alarm sounds: {e}");
        }
        SoundPlayer { jobs: tx }
    }

    pub fn play(&self, sound: Sound) {
        let _ = self.jobs.send(sound);
    }
}

/// After the output could not be opened, sounds are skipped this long before it is tried
/// again: without a sound card, alsa-lib writes several lines to stderr on every attempt.
const RETRY_OPEN: Duration = Duration::from_secs(600);

fn play_loop(rx: mpsc::Receiver<Sound>) {
    let mut sink: Option<rodio::MixerDeviceSink> = None;
    // Said once per outage (no sound card, device busy), not once per popup.
    let mut failing = false;
    let mut retry_at: Option<std::time::Instant> = None;
    loop {
        let job = if sink.is_some() {
            match rx.recv_timeout(KEEP_OPEN) {
                Ok(s) => s,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    sink = None;
                    continue;
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return,
            }
        } else {
            match rx.recv() {
                Ok(s) => s,
                Err(_) => return,
            }
        };
        if sink.is_none() {
            if retry_at.is_some_and(|t| std::time::Instant::now() < t) {
                continue;
            }
            match rodio::DeviceSinkBuilder::open_default_sink() {
                Ok(mut s) => {
                    s.log_on_drop(false);
                    sink = Some(s);
                    failing = false;
                    retry_at = None;
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!("no audio output for alarm sounds: {e}");
                    }
                    failing = true;
                    retry_at = Some(std::time::Instant::now() + RETRY_OPEN);
                    continue;
                }
            }
        }
        match decode(job) {
            Ok(source) => {
                if let Some(s) = &sink {
                    s.mixer().add(source);
                }
            }
            Err(e) => tracing::warn!("the sound {} could not be decoded: {e}", job.file_name()),
        }
    }
}

/// The sound as a rodio source.
pub fn decode(
    sound: Sound,
) -> Result<rodio::Decoder<std::io::Cursor<&'static [u8]>>, rodio::decoder::DecoderError> {
    rodio::Decoder::new_wav(std::io::Cursor::new(sound.bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rodio::Source;

    #[test]
    fn shipped_sounds_decode_and_are_short() {
        for s in Sound::ALL {
            let d = decode(s).expect("decodes");
            assert_eq!(d.channels().get(), 1, "{s:?}");
            let samples = d.count();
            let secs = samples as f64 / 22_050.0;
            assert!((0.3..1.5).contains(&secs), "{s:?} lasts {secs} s");
        }
    }

    #[test]
    fn sound_files_are_written_once_for_the_hint() {
        let dir = tempfile::tempdir().unwrap();
        let p = Sound::Alarm.file_in(dir.path()).unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), Sound::Alarm.bytes());
        let modified = std::fs::metadata(&p).unwrap().modified().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(Sound::Alarm.file_in(dir.path()).unwrap(), p);
        assert_eq!(std::fs::metadata(&p).unwrap().modified().unwrap(), modified);
    }

    #[test]
    fn playing_without_a_sound_card_neither_blocks_nor_panics() {
        let player = SoundPlayer::start();
        for s in Sound::ALL {
            player.play(s);
        }
    }
}
