//! The display subtests' RFB (VNC) client (RFC 6143): the handshake at 3.3, 3.7 or
//! 3.8 with security type None, SetPixelFormat, SetEncodings (raw only),
//! FramebufferUpdateRequest, and reading FramebufferUpdates of raw rectangles. It
//! asks for nothing but raw, so a server must send nothing else.

use std::time::Duration;

use tokio::time::Instant;

use super::harness::{Check, ensure};
use crate::contract::{ByteSink, ByteStream, DisplayConnection};

/// How long a server may take to send a message (or the rest of one) when one is due.
pub const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A true-colour pixel format (RFC 6143 §7.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PixelFormat {
    pub bits_per_pixel: u8,
    pub depth: u8,
    pub big_endian: bool,
    pub true_colour: bool,
    /// Red, green, blue.
    pub max: [u16; 3],
    /// Red, green, blue.
    pub shift: [u8; 3],
}

impl PixelFormat {
    /// 32 bits per pixel, little endian, 8 bits per channel at 16/8/0.
    pub const RGB888_LE: PixelFormat = PixelFormat {
        bits_per_pixel: 32,
        depth: 24,
        big_endian: false,
        true_colour: true,
        max: [255, 255, 255],
        shift: [16, 8, 0],
    };
    /// 32 bits per pixel, big endian, 8 bits per channel at 0/8/16.
    pub const BGR888_BE: PixelFormat = PixelFormat {
        big_endian: true,
        shift: [0, 8, 16],
        ..PixelFormat::RGB888_LE
    };
    /// 16 bits per pixel, big endian, red 5 bits at 11, green 6 at 5, blue 5 at 0.
    pub const RGB565_BE: PixelFormat = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: true,
        true_colour: true,
        max: [31, 63, 31],
        shift: [11, 5, 0],
    };
    /// 8 bits per pixel: blue 2 bits at 6, green 3 at 3, red 3 at 0 (the low-colour
    /// format of TightVNC's and TigerVNC's viewers).
    pub const BGR233: PixelFormat = PixelFormat {
        bits_per_pixel: 8,
        depth: 8,
        big_endian: false,
        true_colour: true,
        max: [7, 7, 3],
        shift: [0, 3, 6],
    };

    fn to_wire(self) -> [u8; 16] {
        let [r, g, b] = self.max.map(u16::to_be_bytes);
        let [rs, gs, bs] = self.shift;
        let (bpp, depth) = (self.bits_per_pixel, self.depth);
        let (be, tc) = (self.big_endian.into(), self.true_colour.into());
        [
            bpp, depth, be, tc, r[0], r[1], g[0], g[1], b[0], b[1], rs, gs, bs, 0, 0, 0,
        ]
    }

    fn from_wire(b: &[u8]) -> PixelFormat {
        PixelFormat {
            bits_per_pixel: b[0],
            depth: b[1],
            big_endian: b[2] != 0,
            true_colour: b[3] != 0,
            max: [0, 1, 2].map(|i| u16::from_be_bytes([b[4 + 2 * i], b[5 + 2 * i]])),
            shift: [b[10], b[11], b[12]],
        }
    }

    /// Bytes per pixel on the wire.
    pub fn bytes_per_pixel(self) -> usize {
        usize::from(self.bits_per_pixel).div_ceil(8)
    }

    /// The red, green and blue values of one pixel's bytes, each in `0..=max`.
    pub fn channels(self, pixel: &[u8]) -> [u32; 3] {
        let value = pixel.iter().enumerate().fold(0u32, |v, (i, &b)| {
            let shift = if self.big_endian { pixel.len() - 1 - i } else { i };
            v | u32::from(b) << (8 * shift)
        });
        [0, 1, 2].map(|c| (value >> self.shift[c]) & u32::from(self.max[c]))
    }

    /// 8-bit `rgb` at this format's precision, rounded (a server that truncates
    /// instead is at most 1 below).
    pub fn quantize(self, rgb: [u32; 3]) -> [u32; 3] {
        [0, 1, 2].map(|c| (rgb[c] * u32::from(self.max[c]) + 127) / 255)
    }
}

/// What ServerInit says.
#[derive(Debug, Clone)]
pub struct ServerInit {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
}

/// One raw rectangle of a FramebufferUpdate.
#[derive(Debug, Clone)]
pub struct Rectangle {
    pub x: u32,
    pub y: u32,
    pub w: u32,
    pub h: u32,
    /// Row by row, in the pixel format in force.
    pub pixels: Vec<u8>,
}

/// One FramebufferUpdate.
#[derive(Debug, Clone, Default)]
pub struct Update {
    pub rects: Vec<Rectangle>,
    /// The whole message's size.
    pub bytes: usize,
}

/// A client on one display connection.
pub struct RfbClient {
    input: ByteSink,
    output: ByteStream,
    buf: Vec<u8>,
    format: Option<PixelFormat>,
}

impl RfbClient {
    /// A client on a freshly opened connection.
    pub fn new(conn: DisplayConnection) -> RfbClient {
        RfbClient {
            input: conn.input,
            output: conn.output,
            buf: Vec::new(),
            format: None,
        }
    }

    /// Waits until the server has sent anything; false if nothing came by `deadline`.
    async fn wait_for_data(&mut self, deadline: Instant) -> Result<bool, String> {
        if self.buf.is_empty() {
            match tokio::time::timeout_at(deadline, self.output.next_chunk()).await {
                Err(_) => return Ok(false),
                Ok(None) => return Err("the RFB server hung up".into()),
                Ok(Some(chunk)) => self.buf.extend_from_slice(&chunk),
            }
        }
        Ok(true)
    }

    async fn read_exact(&mut self, n: usize) -> Result<Vec<u8>, String> {
        while self.buf.len() < n {
            let chunk = tokio::time::timeout(READ_TIMEOUT, self.output.next_chunk())
                .await
                .map_err(|_| {
                    format!(
                        "the RFB server sent nothing for {READ_TIMEOUT:?} (expected {n} bytes, had {})",
                        self.buf.len()
                    )
                })?;
            let chunk =
                chunk.ok_or_else(|| format!("the RFB server hung up (expected {n} bytes, had {})", self.buf.len()))?;
            self.buf.extend_from_slice(&chunk);
        }
        Ok(self.buf.drain(..n).collect())
    }

    async fn u8(&mut self) -> Result<u8, String> {
        Ok(self.read_exact(1).await?[0])
    }

    async fn u16(&mut self) -> Result<u16, String> {
        let b = self.read_exact(2).await?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    async fn u32(&mut self) -> Result<u32, String> {
        let b = self.read_exact(4).await?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    async fn string(&mut self) -> Result<String, String> {
        let len = self.u32().await? as usize;
        ensure!(len <= 1 << 20, "the RFB server sent a string of {len} bytes");
        Ok(String::from_utf8_lossy(&self.read_exact(len).await?).into_owned())
    }

    async fn send(&self, bytes: Vec<u8>) -> Check {
        ensure!(self.input.send(bytes).await, "the RFB server stopped reading");
        Ok(())
    }

    /// The minor version the server offers (3 for `RFB 003.00x`).
    pub async fn server_version(&mut self) -> Result<u32, String> {
        let version = self.read_exact(12).await?;
        let text = String::from_utf8_lossy(&version).into_owned();
        let minor = match (text.get(..8), text.get(8..11), text.get(11..)) {
            (Some("RFB 003."), Some(m), Some("\n")) => m.parse().ok(),
            _ => None,
        };
        minor.ok_or_else(|| format!("not an RFB 3.x server: it greeted with {text:?}"))
    }

    /// Runs the rest of the handshake (after [`RfbClient::server_version`]) speaking
    /// RFB 3.`minor` (3, 7 or 8), up to ServerInit.
    pub async fn handshake_as(&mut self, minor: u32) -> Result<ServerInit, String> {
        self.send(format!("RFB 003.{minor:03}\n").into_bytes()).await?;
        if minor >= 7 {
            let during = |e: String| format!("reading the security types: {e}");
            let count = self.u8().await.map_err(during)? as usize;
            if count == 0 {
                let reason = self.string().await.map_err(during)?;
                return Err(format!("the RFB server refused the connection: {reason}"));
            }
            let types = self.read_exact(count).await.map_err(during)?;
            ensure!(
                types.contains(&1),
                "the RFB server offers no security type None (offers {types:?})"
            );
            self.send(vec![1]).await?;
            if minor >= 8 {
                let during = |e: String| format!("reading the SecurityResult: {e}");
                let result = self.u32().await.map_err(during)?;
                if result != 0 {
                    let reason = self.string().await.unwrap_or_default();
                    return Err(format!(
                        "the RFB server's SecurityResult is {result} (failed): {reason}"
                    ));
                }
            }
        } else {
            let during = |e: String| format!("reading the security type the server chose: {e}");
            match self.u32().await.map_err(during)? {
                1 => {}
                0 => {
                    let reason = self.string().await.map_err(during)?;
                    return Err(format!("the RFB server refused the connection: {reason}"));
                }
                other => return Err(format!("the RFB 3.3 server demands security type {other}, not None")),
            }
        }
        self.send(vec![1]).await?; // ClientInit, shared
        let during = |e: String| format!("reading ServerInit: {e}");
        let width = u32::from(self.u16().await.map_err(during)?);
        let height = u32::from(self.u16().await.map_err(during)?);
        let format = PixelFormat::from_wire(&self.read_exact(16).await.map_err(during)?);
        self.string().await.map_err(during)?;
        self.format = Some(format);
        Ok(ServerInit { width, height, format })
    }

    /// The whole handshake at the highest version both speak (at most 3.8).
    pub async fn handshake(&mut self) -> Result<ServerInit, String> {
        let minor = self.server_version().await?.min(8);
        self.handshake_as(minor).await
    }

    /// SetEncodings: raw only.
    pub async fn set_encodings_raw(&self) -> Check {
        self.send(vec![2, 0, 0, 1, 0, 0, 0, 0]).await
    }

    /// SetPixelFormat; later updates are read in `format`.
    pub async fn set_pixel_format(&mut self, format: PixelFormat) -> Check {
        let mut m = vec![0, 0, 0, 0];
        m.extend_from_slice(&format.to_wire());
        self.send(m).await?;
        self.format = Some(format);
        Ok(())
    }

    /// FramebufferUpdateRequest.
    pub async fn request(&self, incremental: bool, x: u32, y: u32, w: u32, h: u32) -> Check {
        let mut m = vec![3, incremental.into()];
        for v in [x, y, w, h] {
            m.extend_from_slice(&(v.min(u16::MAX.into()) as u16).to_be_bytes());
        }
        self.send(m).await
    }

    /// The next FramebufferUpdate, skipping Bell, ServerCutText and
    /// SetColourMapEntries; `None` if no message started by `deadline`.
    pub async fn next_update_by(&mut self, deadline: Instant) -> Result<Option<Update>, String> {
        loop {
            if !self.wait_for_data(deadline).await? {
                return Ok(None);
            }
            match self.u8().await? {
                0 => return self.update_body().await.map(Some),
                1 => {
                    self.read_exact(3).await?;
                    let colours = self.u16().await?;
                    self.read_exact(6 * usize::from(colours)).await?;
                }
                2 => {}
                3 => {
                    self.read_exact(3).await?;
                    self.string().await?;
                }
                other => {
                    return Err(format!(
                        "the RFB server sent message type {other}, which is none of RFB 3.8's \
                         (or the previous message was longer than its pixel format allows)"
                    ));
                }
            }
        }
    }

    async fn update_body(&mut self) -> Result<Update, String> {
        let format = self.format.ok_or("the client has no pixel format before ServerInit")?;
        self.read_exact(1).await?;
        let count = self.u16().await?;
        let mut update = Update {
            rects: Vec::new(),
            bytes: 4,
        };
        for _ in 0..count {
            let head = self.read_exact(12).await?;
            let field = |i: usize| u32::from(u16::from_be_bytes([head[2 * i], head[2 * i + 1]]));
            let encoding = i32::from_be_bytes([head[8], head[9], head[10], head[11]]);
            ensure!(
                encoding == 0,
                "the RFB server sent a rectangle in encoding {encoding}, but the client asked for raw (0) only"
            );
            let (w, h) = (field(2), field(3));
            let len = w as usize * h as usize * format.bytes_per_pixel();
            let pixels = self.read_exact(len).await?;
            update.bytes += 12 + len;
            update.rects.push(Rectangle {
                x: field(0),
                y: field(1),
                w,
                h,
                pixels,
            });
        }
        Ok(update)
    }
}
