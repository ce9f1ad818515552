//! STOMP 1.2 frame codec: pure, no I/O.
//!
//! Written here because the STOMP crates on the registry are TCP-only, EUPL-licensed or tied
//! to actix; over WebSocket we only need framing, and that is small enough to own and fuzz.
//!
//! What the decoder copes with, since brokers differ: frames split across WebSocket messages
//! and several frames in one message; LF and CRLF line ends; EOL heart-beats between frames;
//! `content-length` (bodies with NUL bytes); header escaping (except in CONNECT/CONNECTED,
//! as the spec says); repeated headers (the first one wins on lookup); and a size limit that
//! turns an oversized frame into an error before its body is buffered.

use std::fmt;

/// The default limit on one frame (command, headers and body).
pub const DEFAULT_MAX_FRAME: usize = 1024 * 1024;

/// A STOMP command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    Connect,
    Stomp,
    Connected,
    Send,
    Subscribe,
    Unsubscribe,
    Ack,
    Nack,
    Begin,
    Commit,
    Abort,
    Disconnect,
    Message,
    Receipt,
    Error,
}

impl Command {
    pub const ALL: [Command; 15] = [
        Command::Connect,
        Command::Stomp,
        Command::Connected,
        Command::Send,
        Command::Subscribe,
        Command::Unsubscribe,
        Command::Ack,
        Command::Nack,
        Command::Begin,
        Command::Commit,
        Command::Abort,
        Command::Disconnect,
        Command::Message,
        Command::Receipt,
        Command::Error,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Command::Connect => "CONNECT",
            Command::Stomp => "STOMP",
            Command::Connected => "CONNECTED",
            Command::Send => "SEND",
            Command::Subscribe => "SUBSCRIBE",
            Command::Unsubscribe => "UNSUBSCRIBE",
            Command::Ack => "ACK",
            Command::Nack => "NACK",
            Command::Begin => "BEGIN",
            Command::Commit => "COMMIT",
            Command::Abort => "ABORT",
            Command::Disconnect => "DISCONNECT",
            Command::Message => "MESSAGE",
            Command::Receipt => "RECEIPT",
            Command::Error => "ERROR",
        }
    }

    fn parse(s: &[u8]) -> Option<Command> {
        Command::ALL
            .into_iter()
            .find(|c| c.as_str().as_bytes() == s)
    }

    /// The spec exempts the connect handshake from header escaping (STOMP 1.0 compatibility).
    fn escapes_headers(self) -> bool {
        !matches!(self, Command::Connect | Command::Connected | Command::Stomp)
    }
}

impl fmt::Display for Command {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One STOMP frame. Headers keep their order and repetitions; [`Frame::header`] returns
/// the first, as STOMP 1.2 requires.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub command: Command,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Header names whose values are secrets: never printed by `Debug`.
const SECRET_HEADERS: [&str; 2] = ["authorization", "passcode"];

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| {
                if SECRET_HEADERS.iter().any(|s| k.eq_ignore_ascii_case(s)) {
                    (k.as_str(), "<redacted>")
                } else {
                    (k.as_str(), v.as_str())
                }
            })
            .collect();
        f.debug_struct("Frame")
            .field("command", &self.command)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .finish()
    }
}

impl Frame {
    pub fn new(command: Command) -> Self {
        Frame {
            command,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (builder style).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body and a matching `content-length` header.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self.headers.retain(|(k, _)| k != "content-length");
        self.headers
            .push(("content-length".into(), self.body.len().to_string()));
        self
    }

    /// The first value of header `name` (STOMP 1.2: the first of repeated headers wins).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StompError {
    /// Headers beyond the limit: the stream cannot be followed any more.
    #[error("STOMP frame larger than the limit of {limit} bytes")]
    TooLarge { limit: usize },
    /// A frame whose headers were read but whose body is beyond the limit. Recoverable:
    /// the decoder skips the body as it arrives (without buffering it) and goes on with
    /// the next frame; `frame` holds the command and headers, with an empty body.
    #[error("STOMP {} frame with a body beyond the limit of {limit} bytes", frame.command)]
    Oversized { frame: Box<Frame>, limit: usize },
    #[error("unknown STOMP command {0:?}")]
    UnknownCommand(String),
    #[error("malformed STOMP header line")]
    BadHeader,
    #[error("invalid escape sequence in a STOMP header")]
    BadEscape,
    #[error("STOMP header is not UTF-8")]
    NotUtf8,
    #[error("invalid content-length {0:?}")]
    BadContentLength(String),
    #[error("STOMP body not followed by a NUL byte")]
    MissingNul,
}

/// The body of an oversized frame still to be thrown away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Skip {
    None,
    Bytes(usize),
    UntilNul,
}

/// Incremental decoder: feed it bytes as they arrive, take frames out.
///
/// After an error the stream is out of step and the decoder is cleared; the caller should
/// drop the connection.
#[derive(Debug)]
pub struct Decoder {
    skip: Skip,
    buf: Vec<u8>,
    /// Start of unconsumed data in `buf`; compacted lazily so a message of many small
    /// frames is not shifted once per frame.
    start: usize,
    limit: usize,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new()
    }
}

impl Decoder {
    pub fn new() -> Self {
        Decoder::with_limit(DEFAULT_MAX_FRAME)
    }

    pub fn with_limit(limit: usize) -> Self {
        Decoder {
            skip: Skip::None,
            buf: Vec::new(),
            start: 0,
            limit,
        }
    }

    /// Appends received bytes.
    pub fn push(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start >= self.buf.len() / 2 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes received but not yet part of a returned frame.
    pub fn pending(&self) -> usize {
        self.buf.len() - self.start
    }

    /// The next complete frame, `Ok(None)` if more bytes are needed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, StompError> {
        if !self.skip_body() {
            return Ok(None);
        }
        match self.parse() {
            Ok(Some((frame, used, skip))) => {
                self.start += used;
                if self.start == self.buf.len() {
                    self.buf.clear();
                    self.start = 0;
                }
                match skip {
                    Skip::None => Ok(Some(frame)),
                    skip => {
                        self.skip = skip;
                        Err(StompError::Oversized {
                            frame: Box::new(frame),
                            limit: self.limit,
                        })
                    }
                }
            }
            Ok(None) => Ok(None),
            Err(e) => {
                self.buf.clear();
                self.start = 0;
                Err(e)
            }
        }
    }

    /// Throws away what is left of an oversized body; false while more is to come.
    fn skip_body(&mut self) -> bool {
        let avail = self.buf.len() - self.start;
        let done = match self.skip {
            Skip::None => return true,
            Skip::Bytes(n) if n <= avail => {
                self.start += n;
                true
            }
            Skip::Bytes(n) => {
                self.start += avail;
                self.skip = Skip::Bytes(n - avail);
                false
            }
            Skip::UntilNul => match self.buf[self.start..].iter().position(|&b| b == 0) {
                Some(i) => {
                    self.start += i + 1;
                    true
                }
                None => {
                    self.start += avail;
                    false
                }
            },
        };
        if done {
            self.skip = Skip::None;
        }
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        done
    }

    /// Parses one frame from `buf[start..]`; returns it and the bytes it used (including
    /// any heart-beat EOLs before it).
    /// An oversized frame comes back with its headers, the bytes used so far, and what
    /// to skip.
    #[allow(clippy::type_complexity)]
    fn parse(&mut self) -> Result<Option<(Frame, usize, Skip)>, StompError> {
        let data = &self.buf[self.start..];
        // Heart-beats: EOLs between frames.
        let mut pos = 0;
        loop {
            match data.get(pos) {
                Some(b'\n') => pos += 1,
                Some(b'\r') => match data.get(pos + 1) {
                    Some(b'\n') => pos += 2,
                    None => return Ok(None),
                    Some(_) => return Err(StompError::UnknownCommand("\r".into())),
                },
                Some(_) => break,
                None => {
                    // Only heart-beats so far: drop them.
                    self.start += pos;
                    return Ok(None);
                }
            }
        }
        let frame_start = pos;
        let too_large = |upto: usize| upto - frame_start > self.limit;

        // Command line.
        let Some((line, next)) = next_line(data, pos) else {
            return if too_large(data.len()) {
                Err(StompError::TooLarge { limit: self.limit })
            } else {
                Ok(None)
            };
        };
        let command = Command::parse(line).ok_or_else(|| {
            StompError::UnknownCommand(String::from_utf8_lossy(line).chars().take(40).collect())
        })?;
        pos = next;

        // Header lines up to the empty line.
        let mut headers = Vec::new();
        loop {
            let Some((line, next)) = next_line(data, pos) else {
                return if too_large(data.len()) {
                    Err(StompError::TooLarge { limit: self.limit })
                } else {
                    Ok(None)
                };
            };
            pos = next;
            if too_large(pos) {
                return Err(StompError::TooLarge { limit: self.limit });
            }
            if line.is_empty() {
                break;
            }
            let colon = line
                .iter()
                .position(|&b| b == b':')
                .ok_or(StompError::BadHeader)?;
            let (name, value) = (&line[..colon], &line[colon + 1..]);
            let (name, value) = if command.escapes_headers() {
                (unescape(name)?, unescape(value)?)
            } else {
                (utf8(name)?, utf8(value)?)
            };
            headers.push((name, value));
        }

        // Body: by content-length if given (first header wins), else up to the NUL.
        let body_start = pos;
        let content_length = headers
            .iter()
            .find(|(k, _)| k == "content-length")
            .map(|(_, v)| v.as_str());
        let (body_end, end) = match content_length {
            Some(v) => {
                let len: usize = v
                    .trim()
                    .parse()
                    .map_err(|_| StompError::BadContentLength(v.chars().take(20).collect()))?;
                if len > self.limit || too_large(body_start.saturating_add(len)) {
                    let head = Frame {
                        command,
                        headers,
                        body: Vec::new(),
                    };
                    return Ok(Some((head, body_start, Skip::Bytes(len.saturating_add(1)))));
                }
                let body_end = body_start + len;
                match data.get(body_end) {
                    None => return Ok(None),
                    Some(0) => (body_end, body_end + 1),
                    Some(_) => return Err(StompError::MissingNul),
                }
            }
            None => match data[body_start..].iter().position(|&b| b == 0) {
                Some(n) => {
                    if too_large(body_start + n) {
                        let head = Frame {
                            command,
                            headers,
                            body: Vec::new(),
                        };
                        // The whole body is here already: used up, nothing left to skip.
                        return Ok(Some((head, body_start + n + 1, Skip::Bytes(0))));
                    }
                    (body_start + n, body_start + n + 1)
                }
                None => {
                    return if too_large(data.len()) {
                        let head = Frame {
                            command,
                            headers,
                            body: Vec::new(),
                        };
                        Ok(Some((head, data.len(), Skip::UntilNul)))
                    } else {
                        Ok(None)
                    };
                }
            },
        };
        let body = data[body_start..body_end].to_vec();
        Ok(Some((
            Frame {
                command,
                headers,
                body,
            },
            end,
            Skip::None,
        )))
    }
}

/// The line starting at `pos` (without its LF or CRLF) and the position after it.
fn next_line(data: &[u8], pos: usize) -> Option<(&[u8], usize)> {
    let rest = data.get(pos..)?;
    let n = rest.iter().position(|&b| b == b'\n')?;
    let line = &rest[..n];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    Some((line, pos + n + 1))
}

fn utf8(b: &[u8]) -> Result<String, StompError> {
    std::str::from_utf8(b)
        .map(str::to_owned)
        .map_err(|_| StompError::NotUtf8)
}

fn unescape(b: &[u8]) -> Result<String, StompError> {
    if !b.contains(&b'\\') {
        return utf8(b);
    }
    let mut out = Vec::with_capacity(b.len());
    let mut it = b.iter();
    while let Some(&c) = it.next() {
        if c != b'\\' {
            out.push(c);
            continue;
        }
        out.push(match it.next() {
            Some(b'n') => b'\n',
            Some(b'r') => b'\r',
            Some(b'c') => b':',
            Some(b'\\') => b'\\',
            _ => return Err(StompError::BadEscape),
        });
    }
    String::from_utf8(out).map_err(|_| StompError::NotUtf8)
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    for &c in s.as_bytes() {
        match c {
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b':' => out.extend_from_slice(b"\\c"),
            b'\\' => out.extend_from_slice(b"\\\\"),
            _ => out.push(c),
        }
    }
}

/// Encodes a frame exactly as given: headers in order, escaped except in
/// CONNECT/CONNECTED/STOMP, then the body and the terminating NUL. A body that contains a
/// NUL byte needs a `content-length` header ([`Frame::with_body`] adds one).
pub fn encode(frame: &Frame) -> Vec<u8> {
    let mut out = Vec::with_capacity(
        32 + frame.body.len()
            + frame
                .headers
                .iter()
                .map(|(k, v)| k.len() + v.len() + 2)
                .sum::<usize>(),
    );
    out.extend_from_slice(frame.command.as_str().as_bytes());
    out.push(b'\n');
    for (k, v) in &frame.headers {
        if frame.command.escapes_headers() {
            escape_into(&mut out, k);
            out.push(b':');
            escape_into(&mut out, v);
        } else {
            out.extend_from_slice(k.as_bytes());
            out.push(b':');
            out.extend_from_slice(v.as_bytes());
        }
        out.push(b'\n');
    }
    out.push(b'\n');
    out.extend_from_slice(&frame.body);
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn decode_all(chunks: &[&[u8]]) -> Result<Vec<Frame>, StompError> {
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(f) = d.next_frame()? {
                frames.push(f);
            }
        }
        Ok(frames)
    }

    #[test]
    fn connected_frame_with_heartbeats_between() {
        let f = decode_all(&[
            b"\n\nCONNECTED\nversion:1.2\nheart-beat:10000,10000\nserver:ActiveMQ/5.17.2\n\n\0\n\n",
        ])
        .unwrap();
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].command, Command::Connected);
        assert_eq!(f[0].header("heart-beat"), Some("10000,10000"));
        assert!(f[0].body.is_empty());
    }

    #[test]
    fn crlf_lines_and_several_frames_in_one_message() {
        let f =
            decode_all(&[b"MESSAGE\r\nack:a\\c1\r\n\r\nhello\0\r\nRECEIPT\nreceipt-id:7\n\n\0"])
                .unwrap();
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].header("ack"), Some("a:1"));
        assert_eq!(f[0].body, b"hello");
        assert_eq!(f[1].command, Command::Receipt);
    }

    #[test]
    fn content_length_allows_nul_in_body() {
        let f = decode_all(&[b"MESSAGE\ncontent-length:3\n\na\0b\0"]).unwrap();
        assert_eq!(f[0].body, b"a\0b");
        assert_eq!(
            decode_all(&[b"MESSAGE\ncontent-length:2\n\nabc\0"]),
            Err(StompError::MissingNul)
        );
    }

    #[test]
    fn first_repeated_header_wins_and_connect_is_not_unescaped() {
        let f = decode_all(&[b"MESSAGE\nfoo:1\nfoo:2\n\n\0CONNECTED\nx:a\\cb\n\n\0"]).unwrap();
        assert_eq!(f[0].header("foo"), Some("1"));
        assert_eq!(f[0].headers.len(), 2);
        assert_eq!(f[1].header("x"), Some("a\\cb"));
    }

    #[test]
    fn huge_frame_is_an_error_not_an_allocation() {
        // Headers that never end: the stream is lost.
        let mut d = Decoder::with_limit(1024);
        d.push(b"MESSAGE\n");
        d.push(&[b'h'; 2000]);
        assert_eq!(d.next_frame(), Err(StompError::TooLarge { limit: 1024 }));
        assert_eq!(d.pending(), 0, "the buffer is released after the error");

        // A body beyond the limit: reported with its headers, skipped as it arrives, and
        // the next frame decodes.
        let mut d = Decoder::with_limit(1024);
        d.push(b"MESSAGE\nack:a1\ncontent-length:999999\n\n");
        match d.next_frame() {
            Err(StompError::Oversized { frame, limit: 1024 }) => {
                assert_eq!(frame.header("ack"), Some("a1"))
            }
            other => panic!("{other:?}"),
        }
        let chunk = vec![b'x'; 100_000];
        for _ in 0..9 {
            d.push(&chunk);
            assert_eq!(d.next_frame(), Ok(None));
            assert_eq!(d.pending(), 0, "skipped bytes are not kept");
        }
        d.push(&[b'x'; 99_999]);
        d.push(b"\0\nRECEIPT\nreceipt-id:1\n\n\0");
        assert_eq!(d.next_frame().unwrap().unwrap().command, Command::Receipt);

        // The same without content-length: skipped up to the NUL.
        let mut d = Decoder::with_limit(1024);
        d.push(b"MESSAGE\nack:a2\n\n");
        let chunk = vec![b'x'; 600];
        d.push(&chunk);
        assert_eq!(d.next_frame(), Ok(None));
        d.push(&chunk);
        assert!(matches!(d.next_frame(), Err(StompError::Oversized { .. })));
        d.push(&chunk);
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.pending(), 0);
        d.push(b"xx\0MESSAGE\n\nok\0");
        assert_eq!(d.next_frame().unwrap().unwrap().body, b"ok");

        // And when the whole oversized frame is already there.
        let mut d = Decoder::with_limit(16);
        d.push(b"MESSAGE\n\n0123456789abcdefghij\0MESSAGE\n\nok\0");
        assert!(matches!(d.next_frame(), Err(StompError::Oversized { .. })));
        assert_eq!(d.next_frame().unwrap().unwrap().body, b"ok");
    }

    #[test]
    fn bad_input_is_an_error() {
        assert!(matches!(
            decode_all(&[b"HELLO\n\n\0"]),
            Err(StompError::UnknownCommand(_))
        ));
        assert_eq!(
            decode_all(&[b"MESSAGE\nnocolon\n\n\0"]),
            Err(StompError::BadHeader)
        );
        assert_eq!(
            decode_all(&[b"MESSAGE\na:\\t\n\n\0"]),
            Err(StompError::BadEscape)
        );
        assert!(matches!(
            decode_all(&[b"MESSAGE\ncontent-length:x\n\n\0"]),
            Err(StompError::BadContentLength(_))
        ));
    }

    #[test]
    fn debug_hides_secrets() {
        let f = Frame::new(Command::Connect)
            .with_header("Authorization", "Bearer s3cret")
            .with_header("passcode", "pw");
        let s = format!("{f:?}");
        assert!(!s.contains("s3cret") && !s.contains("pw\""), "{s}");
    }

    fn header_text(connect: bool) -> BoxedStrategy<String> {
        if connect {
            "[a-zA-Z0-9 ,._/-]{0,12}".boxed()
        } else {
            "[a-z\\\\:\\r\\n ü0-9-]{0,12}".boxed()
        }
    }

    fn arb_frame() -> impl Strategy<Value = Frame> {
        (0..Command::ALL.len(), any::<bool>())
            .prop_flat_map(|(ci, with_len)| {
                let command = Command::ALL[ci];
                let connect = !command.escapes_headers();
                let name = if connect {
                    "[a-z-]{1,8}".boxed()
                } else {
                    "[a-z:\\\\-]{1,8}".boxed()
                };
                let headers = proptest::collection::vec((name, header_text(connect)), 0..5);
                let body = if with_len {
                    proptest::collection::vec(any::<u8>(), 0..64).boxed()
                } else {
                    proptest::collection::vec(1u8..=255, 0..64).boxed()
                };
                (Just(command), headers, body, Just(with_len))
            })
            .prop_map(|(command, mut headers, body, with_len)| {
                headers.retain(|(k, _)| k != "content-length");
                let mut f = Frame {
                    command,
                    headers,
                    body: Vec::new(),
                };
                if with_len {
                    f = f.with_body(body);
                } else {
                    f.body = body;
                }
                f
            })
    }

    proptest! {
        #[test]
        fn round_trip_under_any_split(frames in proptest::collection::vec(arb_frame(), 1..4),
                                      cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
                                      eols in proptest::collection::vec(0usize..3, 4)) {
            let mut wire = Vec::new();
            for (i, f) in frames.iter().enumerate() {
                for _ in 0..eols[i] { wire.extend_from_slice(if i % 2 == 0 { b"\n" } else { b"\r\n" }); }
                wire.extend_from_slice(&encode(f));
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(wire.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&wire[last..p]); last = p; }
            chunks.push(&wire[last..]);
            let got = decode_all(&chunks).unwrap();
            prop_assert_eq!(got, frames);
        }

        #[test]
        fn arbitrary_bytes_never_panic(chunks in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..5)) {
            let mut d = Decoder::with_limit(256);
            for c in &chunks {
                d.push(c);
                while let Ok(Some(_)) = d.next_frame() {}
            }
        }
    }
}
