//! `MockDisplay` (seed `mockdisplay.go`): a 480×640 display served by a minimal RFB
//! 3.8 server (security type None, 32-bit true colour) that answers every
//! framebuffer update request with a 256×256 grey gradient. Kill and abort close the
//! connection (the server's stream ends).

use std::collections::VecDeque;
use std::rc::Rc;

use enginehost_sdk::{Display, StreamReader, StreamResult, byte_stream, spawn_local};

use crate::sandbox::MockTask;
use crate::session::{Outlet, Session};

/// The only display's name.
pub const NAME: &str = "MockDisplay";
const WIDTH: u16 = 480;
const HEIGHT: u16 = 640;

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
    session: Session,
}

impl DisplayConn {
    /// Ends the server's stream and the session (once).
    pub fn close(&self) {
        self.output.close();
        self.session.close();
    }

    async fn send(&self, bytes: Vec<u8>) -> bool {
        self.output.send(bytes).await
    }
}

/// Opens a connection: returns the server-to-client stream.
pub(crate) fn open(task: &Rc<MockTask>, client: StreamReader<u8>) -> StreamReader<u8> {
    let (tx, rx) = byte_stream();
    let conn = Rc::new(DisplayConn {
        output: Outlet::new(tx),
        session: Session::open(task),
    });
    task.displays.borrow_mut().push(conn.clone());
    spawn_local(async move {
        let _ = serve(
            &conn,
            &mut Input {
                reader: client,
                buf: VecDeque::new(),
            },
        )
        .await;
        conn.close();
        conn.session
            .task()
            .displays
            .borrow_mut()
            .retain(|other| !Rc::ptr_eq(other, &conn));
    });
    rx
}

struct Input {
    reader: StreamReader<u8>,
    buf: VecDeque<u8>,
}

impl Input {
    async fn read_exact(&mut self, n: usize) -> Option<Vec<u8>> {
        while self.buf.len() < n {
            let (result, chunk) = self.reader.read(Vec::with_capacity(4096)).await;
            self.buf.extend(chunk);
            if !matches!(result, StreamResult::Complete(_)) && self.buf.len() < n {
                return None;
            }
        }
        Some(self.buf.drain(..n).collect())
    }
}

fn server_init() -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&WIDTH.to_be_bytes());
    m.extend_from_slice(&HEIGHT.to_be_bytes());
    // bpp 32, depth 24, little endian, true colour, max 255/255/255, shifts 16/8/0.
    m.extend_from_slice(&[32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0]);
    let name = NAME.as_bytes();
    m.extend_from_slice(&(name.len() as u32).to_be_bytes());
    m.extend_from_slice(name);
    m
}

fn gradient_update() -> Vec<u8> {
    let mut m = vec![0u8, 0, 0, 1]; // FramebufferUpdate, padding, one rectangle
    for v in [0u16, 0, 256, 256] {
        m.extend_from_slice(&v.to_be_bytes());
    }
    m.extend_from_slice(&0i32.to_be_bytes()); // raw encoding
    for y in 0..256u32 {
        for x in 0..256u32 {
            let g = ((x + y) / 2) as u8;
            m.extend_from_slice(&[g, g, g, 0]);
        }
    }
    m
}

/// Runs the RFB protocol until the client leaves or the connection is closed.
async fn serve(conn: &DisplayConn, input: &mut Input) -> Option<()> {
    conn.send(b"RFB 003.008\n".to_vec()).await.then_some(())?;
    input.read_exact(12).await?; // client version
    conn.send(vec![1, 1]).await.then_some(())?; // one security type: None
    input.read_exact(1).await?;
    conn.send(vec![0, 0, 0, 0]).await.then_some(())?; // SecurityResult OK
    input.read_exact(1).await?; // ClientInit
    conn.send(server_init()).await.then_some(())?;
    loop {
        let kind = input.read_exact(1).await?[0];
        match kind {
            0 => drop(input.read_exact(19).await?), // SetPixelFormat
            2 => {
                let head = input.read_exact(3).await?; // SetEncodings
                let count = u16::from_be_bytes([head[1], head[2]]) as usize;
                input.read_exact(4 * count).await?;
            }
            3 => {
                input.read_exact(9).await?; // FramebufferUpdateRequest
                conn.send(gradient_update()).await.then_some(())?;
            }
            4 => drop(input.read_exact(7).await?), // KeyEvent
            5 => drop(input.read_exact(5).await?), // PointerEvent
            6 => {
                let head = input.read_exact(7).await?; // ClientCutText
                let len = u32::from_be_bytes([head[3], head[4], head[5], head[6]]) as usize;
                input.read_exact(len).await?;
            }
            _ => return None, // unknown message: hang up
        }
    }
}
