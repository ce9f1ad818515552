//! WebSocket framing below STOMP, read as a byte stream.
//!
//! tungstenite does the HTTP upgrade; after it the socket is read here, frame header by
//! frame header, and the payload of every data frame goes to the STOMP decoder as it
//! arrives. Why not tungstenite's message stream:
//! - it assembles a whole WebSocket message before handing it over, so a message must fit
//!   in memory and under a size limit; one over the limit ended the connection before its
//!   STOMP `ack` header was read, and the broker redelivered it on every reconnect — the
//!   queue was wedged behind one oversized message. Here nothing is assembled: the STOMP
//!   decoder keeps an oversized frame's headers and skips its body, so it can be recorded
//!   and acknowledged.
//! - it checks that text frames are UTF-8 and, after that error, the stream is over (the
//!   same wedge). STOMP bodies are bytes whatever the frame type (RabbitMQ sends text
//!   frames); the payload parser decides what is readable.
//!
//! Every `await` here is cancel-safe (the session reads inside `select!`): bytes move
//! from the socket into `rbuf` or from `out` into the socket, and progress is recorded
//! right after each read or write.

use std::io::Cursor;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Control, Data, OpCode};
use tokio_tungstenite::tungstenite::protocol::frame::FrameHeader;

/// Largest control frame payload (RFC 6455 §5.5).
const MAX_CONTROL: u64 = 125;
/// How much is read from the socket at a time.
const READ_CHUNK: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum WireError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("WebSocket protocol error: {0}")]
    Protocol(String),
}

/// What the reader is in the middle of.
#[derive(Debug, Clone, Copy)]
enum State {
    /// Between frames: the next bytes are a frame header.
    Header,
    /// Inside a data frame's payload; `offset` is how far in (for unmasking).
    Data {
        left: u64,
        mask: Option<[u8; 4]>,
        offset: usize,
    },
    /// A control frame's payload, read whole (at most 125 bytes).
    Control {
        control: Control,
        len: usize,
        mask: Option<[u8; 4]>,
    },
}

/// One step of the reader.
enum Parsed {
    Data(Bytes),
    Ping(Bytes),
    Close,
    /// A frame header or a pong was consumed: look again.
    Nothing,
}

/// A WebSocket connection seen as a stream of payload bytes.
#[derive(Debug)]
pub struct Wire<S> {
    io: S,
    rbuf: BytesMut,
    state: State,
    /// Frames queued for sending, and how much of them is written already.
    out: Vec<u8>,
    out_pos: usize,
    /// A close frame was sent or received: nothing more is read.
    closed: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Wire<S> {
    /// Takes over a socket right after the WebSocket handshake. The server sends nothing
    /// before our first frame (STOMP CONNECT), so no buffered bytes are left behind in the
    /// handshake's reader.
    pub fn new(io: S) -> Self {
        Wire {
            io,
            rbuf: BytesMut::with_capacity(READ_CHUNK),
            state: State::Header,
            out: Vec::new(),
            out_pos: 0,
            closed: false,
        }
    }

    /// The next piece of data-frame payload, in order; `None` when the server closed the
    /// connection (close frame or end of stream). Pings are answered on the way.
    pub async fn next_chunk(&mut self) -> Result<Option<Bytes>, WireError> {
        loop {
            // Only a pong or a close answer can be waiting here; an empty queue costs no
            // call into the socket on every frame.
            if !self.out.is_empty() {
                self.flush().await?;
            }
            if self.closed {
                return Ok(None);
            }
            match self.parse()? {
                Some(Parsed::Data(b)) => return Ok(Some(b)),
                Some(Parsed::Ping(p)) => self.queue(OpCode::Control(Control::Pong), &p),
                Some(Parsed::Close) => {
                    // Answer the close as RFC 6455 asks; the caller drops the socket next.
                    self.queue(OpCode::Control(Control::Close), &[]);
                    self.closed = true;
                }
                Some(Parsed::Nothing) => {}
                None => {
                    if self.rbuf.capacity() - self.rbuf.len() < 4096 {
                        self.rbuf.reserve(READ_CHUNK);
                    }
                    if self.io.read_buf(&mut self.rbuf).await? == 0 {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Sends `payload` as one text frame (STOMP frames are text; a body that is not UTF-8
    /// goes as a binary frame, which STOMP over WebSocket allows too).
    pub async fn send(&mut self, payload: &[u8]) -> Result<(), WireError> {
        self.buffer(payload)?;
        self.flush().await
    }

    /// Queues `payload` as one frame without writing it yet: many small frames (ACKs)
    /// then go out in one write by [`Wire::flush`].
    pub fn buffer(&mut self, payload: &[u8]) -> Result<(), WireError> {
        if self.closed {
            return Err(WireError::Protocol("the connection is closing".into()));
        }
        let data = if std::str::from_utf8(payload).is_ok() {
            Data::Text
        } else {
            Data::Binary
        };
        self.queue(OpCode::Data(data), payload);
        Ok(())
    }

    /// Sends a close frame (once) and shuts the socket down for writing.
    pub async fn close(&mut self) -> Result<(), WireError> {
        if !self.closed {
            self.queue(OpCode::Control(Control::Close), &[]);
            self.closed = true;
        }
        self.flush().await?;
        self.io.shutdown().await?;
        Ok(())
    }

    /// Appends one masked frame to the send queue (a client masks everything it sends).
    fn queue(&mut self, opcode: OpCode, payload: &[u8]) {
        let mask: [u8; 4] = rand::random();
        let header = FrameHeader {
            is_final: true,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask: Some(mask),
        };
        // Writing into a Vec cannot fail.
        let _ = header.format(payload.len() as u64, &mut self.out);
        let start = self.out.len();
        self.out.extend_from_slice(payload);
        apply_mask(&mut self.out[start..], mask, 0);
    }

    /// Writes what is queued.
    pub async fn flush(&mut self) -> Result<(), WireError> {
        while self.out_pos < self.out.len() {
            let n = self.io.write(&self.out[self.out_pos..]).await?;
            if n == 0 {
                return Err(std::io::Error::from(std::io::ErrorKind::WriteZero).into());
            }
            self.out_pos += n;
        }
        self.out.clear();
        self.out_pos = 0;
        self.io.flush().await?;
        Ok(())
    }

    /// One step over the buffered bytes; `None` when more bytes are needed.
    fn parse(&mut self) -> Result<Option<Parsed>, WireError> {
        match self.state {
            State::Header => {
                let mut cursor = Cursor::new(&self.rbuf[..]);
                let Some((header, len)) = FrameHeader::parse(&mut cursor)
                    .map_err(|e| WireError::Protocol(e.to_string()))?
                else {
                    return Ok(None);
                };
                let used = cursor.position() as usize;
                self.rbuf.advance(used);
                if header.rsv1 || header.rsv2 || header.rsv3 {
                    // No extension was negotiated (we offer none).
                    return Err(WireError::Protocol("reserved bits set".into()));
                }
                self.state = match header.opcode {
                    OpCode::Data(Data::Text | Data::Binary | Data::Continue) => State::Data {
                        left: len,
                        mask: header.mask,
                        offset: 0,
                    },
                    OpCode::Control(c @ (Control::Ping | Control::Pong | Control::Close)) => {
                        if len > MAX_CONTROL || !header.is_final {
                            return Err(WireError::Protocol("malformed control frame".into()));
                        }
                        State::Control {
                            control: c,
                            len: len as usize,
                            mask: header.mask,
                        }
                    }
                    other => {
                        return Err(WireError::Protocol(format!("unknown opcode {other}")));
                    }
                };
                Ok(Some(Parsed::Nothing))
            }
            State::Data { left, mask, offset } => {
                if left == 0 {
                    self.state = State::Header;
                    return Ok(Some(Parsed::Nothing));
                }
                if self.rbuf.is_empty() {
                    return Ok(None);
                }
                let n = usize::try_from(left)
                    .unwrap_or(usize::MAX)
                    .min(self.rbuf.len());
                let mut chunk = self.rbuf.split_to(n);
                if let Some(m) = mask {
                    apply_mask(&mut chunk, m, offset);
                }
                let left = left - n as u64;
                self.state = if left == 0 {
                    State::Header
                } else {
                    State::Data {
                        left,
                        mask,
                        offset: offset.wrapping_add(n),
                    }
                };
                Ok(Some(Parsed::Data(chunk.freeze())))
            }
            State::Control { control, len, mask } => {
                if self.rbuf.len() < len {
                    return Ok(None);
                }
                let mut payload = self.rbuf.split_to(len);
                if let Some(m) = mask {
                    apply_mask(&mut payload, m, 0);
                }
                self.state = State::Header;
                Ok(Some(match control {
                    Control::Ping => Parsed::Ping(payload.freeze()),
                    Control::Close => Parsed::Close,
                    _ => Parsed::Nothing,
                }))
            }
        }
    }
}

/// XORs `data` with `mask`, `data` starting `offset` bytes into the payload.
fn apply_mask(data: &mut [u8], mask: [u8; 4], offset: usize) {
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(offset + i) % 4];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    /// A server-side frame (unmasked unless `mask` is given).
    fn frame(opcode: OpCode, fin: bool, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let header = FrameHeader {
            is_final: fin,
            rsv1: false,
            rsv2: false,
            rsv3: false,
            opcode,
            mask,
        };
        let mut out = Vec::new();
        header.format(payload.len() as u64, &mut out).unwrap();
        let start = out.len();
        out.extend_from_slice(payload);
        if let Some(m) = mask {
            apply_mask(&mut out[start..], m, 0);
        }
        out
    }

    async fn read_all<S: AsyncRead + AsyncWrite + Unpin>(w: &mut Wire<S>) -> Vec<u8> {
        let mut got = Vec::new();
        while let Some(c) = w.next_chunk().await.unwrap() {
            got.extend_from_slice(&c);
        }
        got
    }

    /// Everything the client sent, as (opcode, unmasked payload); all must be masked.
    async fn sent_frames(server: &mut tokio::io::DuplexStream) -> Vec<(OpCode, Vec<u8>)> {
        let mut sent = Vec::new();
        server.read_to_end(&mut sent).await.unwrap();
        let mut bytes = &sent[..];
        let mut frames = Vec::new();
        while !bytes.is_empty() {
            let mut c = Cursor::new(bytes);
            let (h, len) = FrameHeader::parse(&mut c).unwrap().unwrap();
            let at = c.position() as usize;
            let mut p = bytes[at..at + len as usize].to_vec();
            apply_mask(&mut p, h.mask.expect("client frames are masked"), 0);
            frames.push((h.opcode, p));
            bytes = &bytes[at + len as usize..];
        }
        frames
    }

    #[tokio::test]
    async fn invalid_utf8_in_text_frames_and_fragments_pass_as_bytes() {
        let (client, mut server) = duplex(1 << 20);
        let mut wire = Wire::new(client);
        let mut bytes = frame(
            OpCode::Data(Data::Text),
            false,
            b"MESSAGE\n\n\xff\xfe",
            None,
        );
        bytes.extend(frame(OpCode::Data(Data::Continue), true, b"(\0", None));
        bytes.extend(frame(
            OpCode::Data(Data::Binary),
            true,
            b"\n",
            Some([1, 2, 3, 4]),
        ));
        server.write_all(&bytes).await.unwrap();
        drop(server);
        assert_eq!(read_all(&mut wire).await, b"MESSAGE\n\n\xff\xfe(\0\n");
    }

    #[tokio::test]
    async fn a_large_frame_arrives_in_pieces_without_a_limit() {
        let (client, mut server) = duplex(64 * 1024);
        let mut wire = Wire::new(client);
        let payload: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let expected = payload.clone();
        let writer = tokio::spawn(async move {
            server
                .write_all(&frame(OpCode::Data(Data::Binary), true, &payload, None))
                .await
                .unwrap();
        });
        let mut got = Vec::new();
        let mut pieces = 0;
        while got.len() < expected.len() {
            got.extend_from_slice(&wire.next_chunk().await.unwrap().unwrap());
            pieces += 1;
        }
        writer.await.unwrap();
        assert_eq!(got, expected);
        assert!(pieces > 1, "delivered in pieces, not assembled");
    }

    #[tokio::test]
    async fn pings_are_answered_and_close_is_echoed() {
        let (client, mut server) = duplex(1 << 16);
        let mut wire = Wire::new(client);
        let mut bytes = frame(OpCode::Control(Control::Ping), true, b"hb", None);
        bytes.extend(frame(OpCode::Data(Data::Text), true, b"x", None));
        bytes.extend(frame(OpCode::Control(Control::Pong), true, b"", None));
        bytes.extend(frame(OpCode::Control(Control::Close), true, b"", None));
        bytes.extend(frame(OpCode::Data(Data::Text), true, b"after close", None));
        server.write_all(&bytes).await.unwrap();
        assert_eq!(read_all(&mut wire).await, b"x");
        assert!(
            wire.send(b"late").await.is_err(),
            "nothing is sent after close"
        );
        drop(wire);
        let frames = sent_frames(&mut server).await;
        assert_eq!(
            frames,
            vec![
                (OpCode::Control(Control::Pong), b"hb".to_vec()),
                (OpCode::Control(Control::Close), vec![]),
            ]
        );
    }

    #[tokio::test]
    async fn sent_frames_are_masked_text_or_binary() {
        let (client, mut server) = duplex(1 << 16);
        let mut wire = Wire::new(client);
        wire.send(b"ACK\nid:1\n\n\0").await.unwrap();
        wire.send(b"\xff").await.unwrap();
        wire.close().await.unwrap();
        let frames = sent_frames(&mut server).await;
        assert_eq!(
            frames,
            vec![
                (OpCode::Data(Data::Text), b"ACK\nid:1\n\n\0".to_vec()),
                (OpCode::Data(Data::Binary), b"\xff".to_vec()),
                (OpCode::Control(Control::Close), vec![]),
            ]
        );
    }

    #[tokio::test]
    async fn reserved_bits_and_oversized_control_frames_are_errors() {
        let (client, mut server) = duplex(1 << 16);
        let mut wire = Wire::new(client);
        let mut bad = frame(OpCode::Data(Data::Text), true, b"x", None);
        bad[0] |= 0x40;
        server.write_all(&bad).await.unwrap();
        assert!(matches!(
            wire.next_chunk().await,
            Err(WireError::Protocol(_))
        ));

        let (client, mut server) = duplex(1 << 16);
        let mut wire = Wire::new(client);
        server
            .write_all(&frame(
                OpCode::Control(Control::Ping),
                true,
                &[0; 200],
                None,
            ))
            .await
            .unwrap();
        assert!(matches!(
            wire.next_chunk().await,
            Err(WireError::Protocol(_))
        ));
    }

    /// Feeds `bytes` to the reader in the given pieces, without a socket: the payload
    /// bytes it yields, the pings it would answer, and whether it saw a close.
    fn parse_pieces(pieces: &[&[u8]]) -> Result<(Vec<u8>, usize, bool), WireError> {
        let (client, _server) = duplex(16);
        let mut wire = Wire::new(client);
        let (mut data, mut pings, mut closed) = (Vec::new(), 0, false);
        for piece in pieces {
            wire.rbuf.extend_from_slice(piece);
            while let Some(p) = wire.parse()? {
                match p {
                    Parsed::Data(b) => data.extend_from_slice(&b),
                    Parsed::Ping(_) => pings += 1,
                    Parsed::Close => closed = true,
                    Parsed::Nothing => {}
                }
            }
        }
        Ok((data, pings, closed))
    }

    use proptest::prelude::*;

    proptest! {
        /// Data frames (text, binary, continuation; masked or not) with pings between them,
        /// cut anywhere: the payload comes out whole and in order.
        #[test]
        fn payload_survives_any_split(
            frames in proptest::collection::vec(
                (0u8..3, proptest::collection::vec(any::<u8>(), 0..300), any::<bool>(), any::<bool>()),
                1..6),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let mut bytes = Vec::new();
            let mut expected = Vec::new();
            let mut pings = 0;
            for (kind, payload, masked, ping_after) in &frames {
                let opcode = match kind {
                    0 => OpCode::Data(Data::Text),
                    1 => OpCode::Data(Data::Binary),
                    _ => OpCode::Data(Data::Continue),
                };
                let mask = masked.then_some([7, 1, 200, 33]);
                bytes.extend(frame(opcode, true, payload, mask));
                expected.extend_from_slice(payload);
                if *ping_after {
                    bytes.extend(frame(OpCode::Control(Control::Ping), true, b"p", None));
                    pings += 1;
                }
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(bytes.len() + 1)).collect();
            points.sort_unstable();
            let mut pieces = Vec::new();
            let mut last = 0;
            for p in points {
                pieces.push(&bytes[last..p]);
                last = p;
            }
            pieces.push(&bytes[last..]);
            let (data, seen_pings, closed) = parse_pieces(&pieces).unwrap();
            prop_assert_eq!(data, expected);
            prop_assert_eq!(seen_pings, pings);
            prop_assert!(!closed);
        }

        /// Whatever a server sends, the reader answers with data or an error, never a panic.
        #[test]
        fn arbitrary_bytes_never_panic(
            pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..64), 0..6),
        ) {
            let pieces: Vec<&[u8]> = pieces.iter().map(|p| p.as_slice()).collect();
            let _ = parse_pieces(&pieces);
        }
    }
}
