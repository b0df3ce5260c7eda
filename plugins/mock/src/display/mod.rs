//! `MockDisplay` (seed `mockdisplay.go`): a screen 480 wide and 640 high served by
//! an RFB (VNC) server, what a person's viewer gets from `open-display`.
//!
//! - Handshake ([`rfb`]): the server offers 3.8 and speaks 3.3, 3.7 or 3.8, as the
//!   viewer answers; security type None.
//! - Pixels ([`pixel`]): the server's format is 32 bits per pixel, depth 24, little
//!   endian. SetPixelFormat is honoured for true colour at 8, 16 or 32 bits per pixel
//!   in either byte order with any channel layout. Any other request (colour-map
//!   mode, 24 bits per pixel, overlapping channels) closes the connection: after
//!   ServerInit RFB has no message that carries a reason, so the reason goes to the
//!   task log instead of garbage to the viewer. Rectangles are raw-encoded, which
//!   every viewer accepts whatever it lists in SetEncodings.
//! - Screen: the seed's 256×256 grey gradient at the top left, a fixed background
//!   (steel blue) everywhere else. The seed repainted the same gradient every 100 ms;
//!   the picture never changes, so it is painted once.
//! - Updates: a non-incremental request is answered at once with the requested area.
//!   An incremental request is answered with the part of its area the viewer does not
//!   have in its current pixel format (all of it before the first update and after a
//!   SetPixelFormat); when it has all of it, the request is held until something
//!   changes, as qemu's VNC server does. This screen never changes, so an idle viewer
//!   gets no updates and costs no bandwidth; a request held when the viewer changes
//!   its pixel format is answered then.
//!
//! Kill and abort close the connection (the server's stream ends).

mod pixel;
mod region;
mod rfb;

use std::rc::Rc;

use enginehost_sdk::{Display, Shells, StreamReader, byte_stream};

use self::pixel::{Encoder, HEIGHT, PixelFormat, Screen, WIDTH};
use self::region::{Rect, Region};
use self::rfb::{End, Input, Message, send};
use crate::session::Outlet;

/// The only display's name.
pub const NAME: &str = "MockDisplay";

/// What `list-displays` answers.
pub fn mock_display() -> Display {
    Display {
        name: NAME.into(),
        description: "Simple mock VNC display rendering a static test image".into(),
        width: WIDTH.into(),
        height: HEIGHT.into(),
    }
}

/// One open connection; the sandbox closes it on kill/abort.
pub struct DisplayConn {
    output: Outlet,
}

impl DisplayConn {
    /// Ends the server's stream.
    pub fn close(&self) {
        self.output.close();
    }
}

/// Opens a connection, one of a task's `displays`: returns the server-to-client
/// stream. A viewer the server refuses is said through `log`.
pub(crate) fn open(
    displays: &Rc<Shells<DisplayConn>>,
    client: StreamReader<u8>,
    log: impl Fn(&str) + 'static,
) -> StreamReader<u8> {
    let (tx, rx) = byte_stream();
    let conn = Rc::new(DisplayConn {
        output: Outlet::new(tx),
    });
    displays.add(conn.clone());
    let serving = conn.clone();
    displays.reap(&conn, async move {
        let ended = serve(&serving.output, &mut Input::new(client)).await;
        if let Err(End::Refused(why)) = ended {
            log(&format!("{NAME}: closed a viewer's connection: {why}"));
        }
        serving.close();
    });
    rx
}

/// What the server knows about one viewer.
struct Viewer {
    encoder: Encoder,
    /// The part of the screen the viewer does not have in its current format.
    missing: Region,
    /// The area of incremental requests waiting for a change.
    held: Option<Rect>,
}

/// Runs the RFB protocol until the viewer leaves, the connection is closed, or the
/// server refuses the viewer.
async fn serve(out: &Outlet, input: &mut Input) -> Result<(), End> {
    rfb::handshake(out, input, NAME).await?;
    let screen = Screen::get();
    let mut viewer = Viewer {
        encoder: Encoder::new(PixelFormat::SERVER),
        missing: Region::of(Screen::rect()),
        held: None,
    };
    loop {
        match rfb::read_message(input).await? {
            Message::SetPixelFormat(format) => {
                viewer.encoder = Encoder::new(format.map_err(End::Refused)?);
                viewer.missing = Region::of(Screen::rect());
                // A held request is due now: its area is missing in the new format.
                if let Some(area) = viewer.held.take() {
                    let parts = viewer.missing.take(&area);
                    if parts.is_empty() {
                        viewer.held = Some(area); // it lies off the screen
                    } else {
                        send_update(out, screen, &viewer.encoder, &parts).await?;
                    }
                }
            }
            Message::Request {
                incremental: false,
                area,
            } => {
                let area = area.intersect(&Screen::rect());
                if let Some(area) = &area {
                    viewer.missing.take(area);
                }
                send_update(out, screen, &viewer.encoder, area.as_slice()).await?;
            }
            Message::Request {
                incremental: true,
                area,
            } => {
                let area = viewer.held.take().map_or(area, |held| held.bounds(&area));
                let parts = viewer.missing.take(&area);
                if parts.is_empty() {
                    viewer.held = Some(area); // it has all of it: wait for a change
                } else {
                    send_update(out, screen, &viewer.encoder, &parts).await?;
                }
            }
            Message::Ignored => {}
        }
    }
}

/// Sends one FramebufferUpdate of raw rectangles, encoded row by row into chunks of
/// about 64 KiB (a full frame is never held twice).
async fn send_update(out: &Outlet, screen: &Screen, encoder: &Encoder, rects: &[Rect]) -> Result<(), End> {
    const CHUNK: usize = 64 * 1024;
    let mut m = Vec::with_capacity(CHUNK);
    m.extend_from_slice(&[0, 0]); // FramebufferUpdate, padding
    m.extend_from_slice(&(rects.len() as u16).to_be_bytes());
    for r in rects {
        for v in [r.x, r.y, r.w, r.h] {
            m.extend_from_slice(&(v as u16).to_be_bytes());
        }
        m.extend_from_slice(&0i32.to_be_bytes()); // raw
        for y in r.y..r.y + r.h {
            encoder.put_row(screen, r, y, &mut m);
            if m.len() >= CHUNK {
                send(out, std::mem::replace(&mut m, Vec::with_capacity(CHUNK))).await?;
            }
        }
    }
    if !m.is_empty() {
        send(out, m).await?;
    }
    Ok(())
}
