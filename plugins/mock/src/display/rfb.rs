//! The RFB wire protocol (RFC 6143) from the server's side: the handshake at 3.3,
//! 3.7 or 3.8, ServerInit, and reading client messages.

use std::collections::VecDeque;

use enginehost_sdk::{StreamReader, StreamResult};

use super::pixel::{HEIGHT, PixelFormat, WIDTH};
use super::region::Rect;
use crate::session::Outlet;

/// Why a connection ended.
#[derive(Debug)]
pub enum End {
    /// The viewer left, or the display was closed (kill, abort).
    Gone,
    /// The server hangs up on the viewer, for this reason (logged to the task log).
    Refused(String),
}

/// Sends `bytes`; [`End::Gone`] when the connection is closed.
pub async fn send(out: &Outlet, bytes: Vec<u8>) -> Result<(), End> {
    if out.send(bytes).await { Ok(()) } else { Err(End::Gone) }
}

/// The viewer's bytes, read as whole fields.
pub struct Input {
    reader: StreamReader<u8>,
    buf: VecDeque<u8>,
}

impl Input {
    /// Reads from `reader`.
    pub fn new(reader: StreamReader<u8>) -> Input {
        Input {
            reader,
            buf: VecDeque::new(),
        }
    }

    async fn fill(&mut self, n: usize) -> Result<(), End> {
        while self.buf.len() < n {
            let (result, chunk) = self.reader.read(Vec::with_capacity(4096)).await;
            self.buf.extend(chunk);
            if !matches!(result, StreamResult::Complete(_)) && self.buf.len() < n {
                return Err(End::Gone);
            }
        }
        Ok(())
    }

    /// The next `N` bytes.
    async fn array<const N: usize>(&mut self) -> Result<[u8; N], End> {
        self.fill(N).await?;
        let mut out = [0u8; N];
        for (o, b) in out.iter_mut().zip(self.buf.drain(..N)) {
            *o = b;
        }
        Ok(out)
    }

    /// Discards `n` bytes (a cut text or an encoding list of any length).
    async fn skip(&mut self, mut n: usize) -> Result<(), End> {
        while n > 0 {
            let step = n.min(64 * 1024);
            self.fill(step).await?;
            self.buf.drain(..step);
            n -= step;
        }
        Ok(())
    }
}

/// The protocol versions the server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Version {
    V3_3,
    V3_7,
    V3_8,
}

impl Version {
    /// The version to speak with a viewer that answered `reply` to our 3.8: 3.7 and
    /// 3.8 as asked (a later 3.x or 4.x as 3.8, the highest the server offered), and
    /// as RFC 6143 §7.1.1 says, any other 3.x as 3.3. `None` for anything else.
    fn of_reply(reply: &[u8; 12]) -> Option<Version> {
        let text = std::str::from_utf8(reply).ok()?;
        let numbers = text.strip_prefix("RFB ")?.strip_suffix('\n')?;
        let (major, minor) = numbers.split_once('.')?;
        if major.len() != 3 || minor.len() != 3 {
            return None;
        }
        let (major, minor): (u32, u32) = (major.parse().ok()?, minor.parse().ok()?);
        match (major, minor) {
            (3, 8..) | (4.., _) => Some(Version::V3_8),
            (3, 7) => Some(Version::V3_7),
            (3, _) => Some(Version::V3_3),
            _ => None,
        }
    }
}

/// A reason string (U32 length, then the text).
fn reason(text: &str) -> Vec<u8> {
    let mut m = (text.len() as u32).to_be_bytes().to_vec();
    m.extend_from_slice(text.as_bytes());
    m
}

/// The handshake up to ServerInit (RFC 6143 §7.1–7.3), security type None: 3.3
/// gets the server's choice and no SecurityResult, 3.7 the list and no
/// SecurityResult (None has none before 3.8), 3.8 the list and a SecurityResult.
pub async fn handshake(out: &Outlet, input: &mut Input, name: &str) -> Result<(), End> {
    send(out, b"RFB 003.008\n".to_vec()).await?;
    let reply: [u8; 12] = input.array().await?;
    let Some(version) = Version::of_reply(&reply) else {
        let why = format!(
            "the viewer answered {:?} to RFB 003.008; it speaks no RFB version 3.3 to 3.8",
            String::from_utf8_lossy(&reply)
        );
        // A failure the way every version understands: 3.3's security type 0.
        let mut m = 0u32.to_be_bytes().to_vec();
        m.extend(reason(&why));
        send(out, m).await?;
        return Err(End::Refused(why));
    };
    match version {
        Version::V3_3 => send(out, 1u32.to_be_bytes().to_vec()).await?, // None
        Version::V3_7 | Version::V3_8 => {
            send(out, vec![1, 1]).await?; // one security type: None
            let [chosen] = input.array().await?;
            if chosen != 1 {
                let why = format!("the viewer chose security type {chosen}; the display offers only None (1)");
                if version == Version::V3_8 {
                    let mut m = 1u32.to_be_bytes().to_vec(); // SecurityResult failed
                    m.extend(reason(&why));
                    send(out, m).await?;
                }
                return Err(End::Refused(why));
            }
            if version == Version::V3_8 {
                send(out, 0u32.to_be_bytes().to_vec()).await?; // SecurityResult OK
            }
        }
    }
    let [_shared] = input.array().await?; // ClientInit: every viewer shares
    let mut init = Vec::new();
    init.extend_from_slice(&WIDTH.to_be_bytes());
    init.extend_from_slice(&HEIGHT.to_be_bytes());
    init.extend_from_slice(&PixelFormat::SERVER.to_wire());
    init.extend(reason(name));
    send(out, init).await
}

/// A client message the server acts on.
pub enum Message {
    /// SetPixelFormat, or why the display cannot serve it.
    SetPixelFormat(Result<PixelFormat, String>),
    /// FramebufferUpdateRequest.
    Request { incremental: bool, area: Rect },
    /// SetEncodings (raw is always used, as every viewer must accept it), KeyEvent,
    /// PointerEvent, ClientCutText: the mock's screen ignores them.
    Ignored,
}

/// Reads the next client message (RFC 6143 §7.5).
pub async fn read_message(input: &mut Input) -> Result<Message, End> {
    let [kind] = input.array().await?;
    Ok(match kind {
        0 => {
            let m: [u8; 19] = input.array().await?;
            let mut format = [0u8; 16];
            format.copy_from_slice(&m[3..]);
            Message::SetPixelFormat(PixelFormat::from_wire(&format))
        }
        2 => {
            let [_, hi, lo] = input.array().await?;
            input.skip(4 * usize::from(u16::from_be_bytes([hi, lo]))).await?;
            Message::Ignored
        }
        3 => {
            let [incremental, m @ ..]: [u8; 9] = input.array().await?;
            let field = |i: usize| u32::from(u16::from_be_bytes([m[2 * i], m[2 * i + 1]]));
            Message::Request {
                incremental: incremental != 0,
                area: Rect {
                    x: field(0),
                    y: field(1),
                    w: field(2),
                    h: field(3),
                },
            }
        }
        4 => {
            input.skip(7).await?;
            Message::Ignored
        }
        5 => {
            input.skip(5).await?;
            Message::Ignored
        }
        6 => {
            let [_, _, _, len @ ..]: [u8; 7] = input.array().await?;
            input.skip(u32::from_be_bytes(len) as usize).await?;
            Message::Ignored
        }
        other => {
            return Err(End::Refused(format!(
                "the viewer sent message type {other}, which RFB 3.8 does not define"
            )));
        }
    })
}
