//! The mock's display through a loopback TCP bridge, as a person's VNC viewer
//! reaches it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use enginehost::contract::{DisplayConnection, Sandbox};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use vnc::{PixelFormat, VncClient, VncConnector, VncEncoding, VncError, VncEvent, VncVersion, X11Event};

use crate::common::*;

/// Bytes the display sent through a bridge.
#[derive(Default)]
pub(crate) struct Traffic {
    server_bytes: AtomicU64,
}

/// Bridges `tcp` to a new connection to `sandbox`'s display `name` until either
/// side ends.
pub(crate) async fn bridge(tcp: TcpStream, sandbox: Arc<dyn Sandbox>, name: &str, traffic: Arc<Traffic>) {
    let DisplayConnection { input, mut output } = sandbox.open_display(name).await.expect("open-display");
    let (mut from_viewer, mut to_viewer) = tcp.into_split();
    let upstream = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from_viewer.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if !input.send(buf[..n].to_vec()).await {
                        break;
                    }
                }
            }
        }
    };
    let downstream = async move {
        while let Some(chunk) = output.next_chunk().await {
            traffic.server_bytes.fetch_add(chunk.len() as u64, Ordering::Relaxed);
            if to_viewer.write_all(&chunk).await.is_err() {
                break;
            }
        }
        let _ = to_viewer.shutdown().await;
    };
    // Either side ending ends the bridge (dropping the other half closes it).
    tokio::select! {
        () = upstream => {}
        () = downstream => {}
    }
}

/// For people: serves the mock's display on 127.0.0.1:$ENGINEHOST_VNC_PORT (default
/// 5900) for $ENGINEHOST_VNC_SECONDS (default 60, at most 290) seconds, printing
/// each second how many bytes the display sent. Point a VNC viewer at it:
/// `ENGINEHOST_VNC_PORT=5900 cargo test --release --test all serve_the_mock_display -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "serves the display to a person's VNC viewer; run by hand"]
async fn serve_the_mock_display_to_a_viewer() {
    let port: u16 = std::env::var("ENGINEHOST_VNC_PORT").map_or(5900, |p| p.parse().expect("a port"));
    let seconds: u64 = std::env::var("ENGINEHOST_VNC_SECONDS").map_or(60, |s| s.parse().expect("seconds"));
    // The mock's longest task is 300 s; the display goes with it.
    assert!(seconds <= 290, "ENGINEHOST_VNC_SECONDS is at most 290");
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(300_000, "true", "")).await;
    let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
    eprintln!("MockDisplay on 127.0.0.1:{port} for {seconds} s");
    let traffic = Arc::new(Traffic::default());
    let accept = {
        let (sandbox, traffic) = (sandbox.clone(), traffic.clone());
        async move {
            loop {
                let (tcp, peer) = listener.accept().await.expect("accept");
                eprintln!("viewer {peer} connected");
                tokio::spawn(bridge(tcp, sandbox.clone(), "MockDisplay", traffic.clone()));
            }
        }
    };
    let report = async {
        let mut last = 0;
        for second in 1..=seconds {
            tokio::time::sleep(Duration::from_secs(1)).await;
            let total = traffic.server_bytes.load(Ordering::Relaxed);
            eprintln!(
                "{second:>4} s: {:>10} bytes this second, {total:>12} in all",
                total - last
            );
            last = total;
        }
    };
    tokio::select! {
        () = accept => {}
        () = report => {}
    }
    sandbox.abort().await.expect("abort");
}

/// A listener whose first connection is bridged to `sandbox`'s MockDisplay.
async fn bridged(sandbox: &Arc<dyn Sandbox>) -> (std::net::SocketAddr, Arc<Traffic>) {
    let listener = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
    let addr = listener.local_addr().unwrap();
    let traffic = Arc::new(Traffic::default());
    let (sandbox, counted) = (sandbox.clone(), traffic.clone());
    tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.expect("accept");
        bridge(tcp, sandbox, "MockDisplay", counted).await;
    });
    (addr, traffic)
}

pub(crate) type Connector = VncConnector<TcpStream, std::future::Ready<Result<String, VncError>>>;

/// Connects vnc-rs through a TCP bridge, speaking `version`, in `format` (the
/// server's own if `None`).
async fn viewer(
    sandbox: &Arc<dyn Sandbox>,
    version: VncVersion,
    format: Option<PixelFormat>,
) -> (VncClient, Arc<Traffic>) {
    let (addr, traffic) = bridged(sandbox).await;
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let mut connector = Connector::new(tcp)
        .set_version(version)
        .add_encoding(VncEncoding::Raw)
        .allow_shared(true);
    if let Some(format) = format {
        connector = connector.set_pixel_format(format);
    }
    let client = tokio::time::timeout(Duration::from_secs(10), async {
        connector.build()?.try_start().await?.finish()
    })
    .await
    .unwrap_or_else(|_| panic!("{version:?}: the handshake took more than 10 s"))
    .unwrap_or_else(|e| panic!("{version:?}: the handshake failed: {e}"));
    (client, traffic)
}

/// A frame as the viewer decoded it: 8-bit RGB per pixel.
pub(crate) struct Frame {
    pub(crate) width: u16,
    pub(crate) height: u16,
    pub(crate) rgb: Vec<Option<[u32; 3]>>,
}

impl Frame {
    fn at(&self, x: u16, y: u16) -> [u32; 3] {
        self.rgb[usize::from(y) * usize::from(self.width) + usize::from(x)]
            .unwrap_or_else(|| panic!("pixel ({x}, {y}) never came"))
    }
}

/// One pixel's bytes in `format`, as 8-bit RGB.
fn decode(format: &PixelFormat, bytes: &[u8]) -> [u32; 3] {
    let value = match (bytes.len(), format.big_endian_flag != 0) {
        (1, _) => u32::from(bytes[0]),
        (2, false) => u32::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        (2, true) => u32::from(u16::from_be_bytes([bytes[0], bytes[1]])),
        (_, false) => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        (_, true) => u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
    };
    let channel = |max: u16, shift: u8| (value >> shift & u32::from(max)) * 255 / u32::from(max);
    [
        channel(format.red_max, format.red_shift),
        channel(format.green_max, format.green_shift),
        channel(format.blue_max, format.blue_shift),
    ]
}

/// The events up to a whole frame (vnc-rs asks for one on connecting).
pub(crate) async fn first_frame(client: &VncClient, format: Option<PixelFormat>) -> Frame {
    let mut format = format;
    let mut frame: Option<Frame> = None;
    let mut missing = usize::MAX;
    while missing > 0 {
        let event = tokio::time::timeout(Duration::from_secs(10), client.recv_event())
            .await
            .unwrap_or_else(|_| panic!("the frame was incomplete after 10 s ({missing} pixels missing)"))
            .expect("an event");
        match event {
            VncEvent::SetResolution(screen) => {
                missing = usize::from(screen.width) * usize::from(screen.height);
                frame = Some(Frame {
                    width: screen.width,
                    height: screen.height,
                    rgb: vec![None; missing],
                });
            }
            VncEvent::SetPixelFormat(server) => format = Some(server),
            VncEvent::RawImage(rect, data) => {
                let (frame, format) = (
                    frame.as_mut().expect("resolution first"),
                    format.as_ref().expect("format first"),
                );
                let bpp = usize::from(format.bits_per_pixel / 8);
                assert_eq!(data.len(), usize::from(rect.width) * usize::from(rect.height) * bpp);
                for (i, pixel) in data.chunks_exact(bpp).enumerate() {
                    let x = usize::from(rect.x) + i % usize::from(rect.width);
                    let y = usize::from(rect.y) + i / usize::from(rect.width);
                    let slot = &mut frame.rgb[y * usize::from(frame.width) + x];
                    if slot.is_none() {
                        missing -= 1;
                    }
                    *slot = Some(decode(format, pixel));
                }
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    frame.expect("a frame")
}

/// The formats a viewer may ask for: (what, format).
fn formats() -> Vec<(&'static str, Option<PixelFormat>)> {
    let mut rgb565 = PixelFormat::bgra();
    (rgb565.bits_per_pixel, rgb565.depth) = (16, 16);
    (rgb565.red_max, rgb565.green_max, rgb565.blue_max) = (31, 63, 31);
    (rgb565.red_shift, rgb565.green_shift, rgb565.blue_shift) = (11, 5, 0);
    let mut rgb565_be = rgb565;
    rgb565_be.big_endian_flag = 1;
    let mut bgr233 = PixelFormat::bgra();
    (bgr233.bits_per_pixel, bgr233.depth) = (8, 8);
    (bgr233.red_max, bgr233.green_max, bgr233.blue_max) = (7, 7, 3);
    (bgr233.red_shift, bgr233.green_shift, bgr233.blue_shift) = (0, 3, 6);
    let mut rgba_be = PixelFormat::rgba();
    rgba_be.big_endian_flag = 1;
    vec![
        ("the server's 32 bpp", None),
        ("32 bpp RGBA big endian", Some(rgba_be)),
        ("16 bpp RGB565", Some(rgb565)),
        ("16 bpp RGB565 big endian", Some(rgb565_be)),
        ("8 bpp BGR233", Some(bgr233)),
    ]
}

/// Whether `got` is `want` at the precision of `format`'s channels.
fn close_to(format: Option<&PixelFormat>, want: [u32; 3], got: [u32; 3]) -> bool {
    let max = format.map_or([255, 255, 255], |f| [f.red_max, f.green_max, f.blue_max]);
    (0..3).all(|c| want[c].abs_diff(got[c]) <= 255 / u32::from(max[c]) + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_real_viewer_gets_the_whole_frame_at_every_version_and_pixel_format() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(300_000, "true", "")).await;
    for version in [VncVersion::RFB33, VncVersion::RFB37, VncVersion::RFB38] {
        for (what, format) in formats() {
            let (client, _) = viewer(&sandbox, version, format).await;
            let frame = first_frame(&client, format).await;
            assert_eq!((frame.width, frame.height), (480, 640), "{version:?}, {what}");
            // The seed's gradient at the top left, steel blue everywhere else.
            for (x, y, want) in [
                (0, 0, [0, 0, 0]),
                (100, 50, [75, 75, 75]),
                (255, 255, [255, 255, 255]),
                (256, 0, [70, 130, 180]),
                (0, 256, [70, 130, 180]),
                (479, 639, [70, 130, 180]),
            ] {
                let got = frame.at(x, y);
                assert!(
                    close_to(format.as_ref(), want, got),
                    "{version:?}, {what}: pixel ({x}, {y}) is {got:?}, expected {want:?}"
                );
            }
            client.close().await.unwrap();
        }
    }
    sandbox.abort().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_real_viewer_costs_no_bandwidth() {
    let engine = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(300_000, "true", "")).await;
    let (client, traffic) = viewer(&sandbox, VncVersion::RFB38, None).await;
    first_frame(&client, None).await;
    let before = traffic.server_bytes.load(Ordering::Relaxed);
    // Like a viewer: ask for an incremental update, again whenever one arrives.
    let window = Duration::from_secs(2);
    let deadline = tokio::time::Instant::now() + window;
    let mut updates = 0;
    client.input(X11Event::Refresh).await.unwrap();
    while let Ok(event) = tokio::time::timeout_at(deadline, client.recv_event()).await {
        if let VncEvent::RawImage(..) = event.expect("an event") {
            updates += 1;
            client.input(X11Event::Refresh).await.unwrap();
        }
    }
    let bytes = traffic.server_bytes.load(Ordering::Relaxed) - before;
    eprintln!("idle viewer: {updates} updates, {bytes} bytes in {window:?}");
    assert_eq!(
        (updates, bytes),
        (0, 0),
        "a still screen sends nothing to an idle viewer"
    );
    // The held request is answered as soon as the viewer needs pixels again.
    client.input(X11Event::FullRefresh).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), client.recv_event()).await;
    assert!(matches!(event, Ok(Ok(VncEvent::RawImage(..)))), "{event:?}");
    client.close().await.unwrap();
    sandbox.abort().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pixel_format_the_display_cannot_serve_closes_the_connection_and_logs_why() {
    let engine = start(&MOCK).await;
    for (what, format, reason) in [
        (
            "colour-map mode",
            [8, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
            "colour-map pixels (true-colour-flag 0)",
        ),
        (
            "24 bits per pixel",
            [24, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0],
            "24 bits per pixel",
        ),
    ] {
        let ctx = context();
        let sandbox = started_in(&engine, ctx.clone(), mock_payload(500, "true", "")).await;
        let DisplayConnection { input, mut output } = sandbox.open_display("MockDisplay").await.unwrap();
        // RFB 3.8, security type None, shared.
        assert!(input.send(b"RFB 003.008\n".to_vec()).await);
        assert!(input.send(vec![1, 1]).await);
        // Version (12), security types (2), SecurityResult (4), ServerInit (35).
        let mut got = Vec::new();
        while got.len() < 53 {
            got.extend(output.next_chunk().await.expect("the handshake"));
        }
        assert_eq!(got.len(), 53, "{what}");
        let mut set_pixel_format = vec![0, 0, 0, 0];
        set_pixel_format.extend_from_slice(&format);
        assert!(input.send(set_pixel_format).await);
        let _ = input.send(vec![3, 0, 0, 0, 0, 0, 1, 224, 2, 128]).await; // a full update request
        let rest = tokio::time::timeout(Duration::from_secs(10), output.read_to_end())
            .await
            .unwrap_or_else(|_| panic!("{what}: the connection stayed open"));
        assert!(rest.is_empty(), "{what}: {} bytes after ServerInit", rest.len());
        drop(input);
        sandbox.wait_for_result().await.unwrap();
        ctx.log().close();
        let log = String::from_utf8(ctx.log().read_to_end().await.unwrap()).unwrap();
        assert!(
            log.contains("[taskcluster] MockDisplay: closed a viewer's connection: ") && log.contains(reason),
            "{what}: {log}"
        );
    }
}
