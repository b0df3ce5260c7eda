//! Display, as a person's VNC viewer needs it (the subtests after `display`'s): the
//! handshake at RFB 3.3, 3.7 and 3.8, the whole framebuffer on a full request,
//! SetPixelFormat honoured at 16, 8 and 32 bits per pixel (either byte order), and
//! no answer storm for an idle viewer. Each runs on every display the sandbox lists
//! and names the display and the step that failed.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::cases::DisplayCase;
use super::display::started;
use super::harness::{Check, Run, ensure, step, with_run};
use super::rfb::{PixelFormat, READ_TIMEOUT, RfbClient, ServerInit};
use crate::contract::{Display, Engine, Sandbox};

/// How long `IdleIsQuiet` watches an idle viewer.
const IDLE_WINDOW: Duration = Duration::from_secs(2);
/// The most updates per second an idle viewer may get on a still screen (a viewer
/// asks again as soon as each update arrives; qemu answers only when something
/// changed, a blinking cursor is a few per second).
const IDLE_UPDATES_PER_SECOND: usize = 20;
/// A pixel format check passes when this share of pixels (percent) matches the
/// 32-bit frame (a real screen may change a little between the two frames).
const FORMAT_MATCH_PERCENT: usize = 90;

/// The sandbox's displays; fails if it lists none.
async fn listed(sandbox: &Arc<dyn Sandbox>) -> Result<Vec<Display>, String> {
    let listed = step("list-displays", sandbox.list_displays().await)?;
    ensure!(!listed.is_empty(), "list-displays gave no display");
    Ok(listed)
}

/// Opens `display` and runs the handshake at the highest version both speak, then
/// asks for raw rectangles only.
async fn connect(sandbox: &Arc<dyn Sandbox>, display: &Display) -> Result<(RfbClient, ServerInit), String> {
    let conn = step(
        &format!("open-display {}", display.name),
        sandbox.open_display(&display.name).await,
    )?;
    let mut client = RfbClient::new(conn);
    let init = client.handshake().await.map_err(|e| format!("handshake: {e}"))?;
    ensure!(
        init.width > 0 && init.height > 0,
        "ServerInit announces a {}×{} framebuffer",
        init.width,
        init.height
    );
    client.set_encodings_raw().await?;
    Ok((client, init))
}

/// A framebuffer area.
#[derive(Clone, Copy)]
struct Area {
    x: u32,
    y: u32,
    w: u32,
    h: u32,
}

/// One frame as read: per pixel, its channels in the frame's pixel format (`None`
/// where no rectangle covered it).
struct Frame {
    width: u32,
    pixels: Vec<Option<[u32; 3]>>,
}

/// How many updates [`read_area`] waits for.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Until they cover the whole area (within [`READ_TIMEOUT`]).
    Covered,
    /// For the first; then for more only while each comes within [`SETTLE`] (a check
    /// of something else than coverage does not fail on a partial answer).
    Settled,
}

/// How long [`Wait::Settled`] waits for a further update.
const SETTLE: Duration = Duration::from_secs(1);

/// Reads the updates answering a request for `area` of the `init.width` ×
/// `init.height` framebuffer, in `format`; every rectangle must lie inside the
/// framebuffer.
async fn read_area(
    client: &mut RfbClient,
    init: &ServerInit,
    format: PixelFormat,
    area: Area,
    wait: Wait,
) -> Result<Frame, String> {
    let (fw, fh) = (init.width, init.height);
    let mut frame = Frame {
        width: fw,
        pixels: vec![None; fw as usize * fh as usize],
    };
    let mut missing = area.w as usize * area.h as usize;
    let deadline = Instant::now() + READ_TIMEOUT;
    let mut updates = 0;
    while missing > 0 {
        let by = match wait {
            Wait::Settled if updates > 0 => deadline.min(Instant::now() + SETTLE),
            _ => deadline,
        };
        let Some(update) = client.next_update_by(by).await? else {
            if wait == Wait::Settled && updates > 0 {
                break;
            }
            let first = (0..area.w * area.h)
                .map(|i| (area.x + i % area.w, area.y + i / area.w))
                .find(|&(x, y)| frame.pixels[(y * fw + x) as usize].is_none())
                .unwrap_or_default();
            return Err(format!(
                "{updates} update(s) in {READ_TIMEOUT:?} left {missing} pixels of the requested {}×{} area at ({}, {}) \
                 uncovered, the first at {first:?}",
                area.w, area.h, area.x, area.y
            ));
        };
        updates += 1;
        for r in &update.rects {
            ensure!(
                r.x + r.w <= fw && r.y + r.h <= fh,
                "a {}×{} rectangle at ({}, {}) lies outside the {fw}×{fh} framebuffer",
                r.w,
                r.h,
                r.x,
                r.y
            );
            let bpp = format.bytes_per_pixel();
            for (i, pixel) in r.pixels.chunks_exact(bpp).enumerate() {
                let (x, y) = (r.x + i as u32 % r.w, r.y + i as u32 / r.w);
                let slot = &mut frame.pixels[(y * fw + x) as usize];
                let inside = x >= area.x && x < area.x + area.w && y >= area.y && y < area.y + area.h;
                if inside && slot.is_none() {
                    missing -= 1;
                }
                *slot = Some(format.channels(pixel));
            }
        }
    }
    Ok(frame)
}

/// The whole framebuffer.
fn whole(init: &ServerInit) -> Area {
    Area {
        x: 0,
        y: 0,
        w: init.width,
        h: init.height,
    }
}

pub async fn rfb_versions(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        // Every connection stays open to the end: a task may end with its last display.
        let mut open = Vec::new();
        for d in listed(&sandbox).await? {
            for minor in [3, 7, 8] {
                let at = |e: String| format!("display {} at RFB 3.{minor}: {e}", d.name);
                let conn = step(&format!("open-display {}", d.name), sandbox.open_display(&d.name).await)?;
                let mut client = RfbClient::new(conn);
                let offered = client.server_version().await.map_err(at)?;
                if offered < minor {
                    continue; // a client may not ask for more than the server offers
                }
                let init = client.handshake_as(minor).await.map_err(at)?;
                ensure!(
                    init.width > 0 && init.height > 0,
                    "{}",
                    at(format!(
                        "ServerInit announces a {}×{} framebuffer",
                        init.width, init.height
                    ))
                );
                // An update right after the handshake proves the server is in step with
                // the client (a 3.7 client reading a 3.8-only SecurityResult is not).
                client.set_encodings_raw().await.map_err(at)?;
                client.request(false, 0, 0, 1, 1).await.map_err(at)?;
                let pixel = Area { x: 0, y: 0, w: 1, h: 1 };
                read_area(&mut client, &init, init.format, pixel, Wait::Covered)
                    .await
                    .map_err(|e| at(format!("a 1×1 update right after the handshake: {e}")))?;
                open.push(client);
            }
        }
        Ok(())
    })
    .await
}

pub async fn full_update(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        let mut open = Vec::new();
        for d in listed(&sandbox).await? {
            let at = |e: String| format!("display {}: {e}", d.name);
            let (mut client, init) = connect(&sandbox, &d).await.map_err(at)?;
            client.request(false, 0, 0, init.width, init.height).await.map_err(at)?;
            read_area(&mut client, &init, init.format, whole(&init), Wait::Covered)
                .await
                .map_err(|e| at(format!("a full update request for {}×{}: {e}", init.width, init.height)))?;
            open.push(client);
        }
        Ok(())
    })
    .await
}

/// Whether `got` (in `format`) shows the 8-bit `want` at `format`'s precision,
/// give or take one step per channel (servers round or truncate).
fn shows(format: PixelFormat, want: [u32; 3], got: [u32; 3]) -> bool {
    let want = format.quantize(want);
    (0..3).all(|c| want[c].abs_diff(got[c]) <= 1)
}

/// Compares the pixels both frames have: (how many, the share in percent that
/// match, the first that does not).
fn compare(reference: &Frame, frame: &Frame, format: PixelFormat) -> (usize, usize, Option<String>) {
    let (mut compared, mut matching, mut first) = (0, 0, None);
    for (i, pair) in reference.pixels.iter().zip(&frame.pixels).enumerate() {
        let (Some(want), Some(got)) = pair else { continue };
        compared += 1;
        if shows(format, *want, *got) {
            matching += 1;
        } else if first.is_none() {
            let (x, y) = (i as u32 % reference.width, i as u32 / reference.width);
            first = Some(format!(
                "at ({x}, {y}) the 32-bit frame has RGB {want:?}, this one {got:?} of at most {:?}",
                format.max
            ));
        }
    }
    (compared, matching * 100 / compared.max(1), first)
}

pub async fn pixel_formats(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        let mut open = Vec::new();
        for d in listed(&sandbox).await? {
            let at = |e: String| format!("display {}: {e}", d.name);
            let (mut client, init) = connect(&sandbox, &d).await.map_err(at)?;
            let (w, h) = (init.width, init.height);
            let reference_format = PixelFormat::RGB888_LE;
            client.set_pixel_format(reference_format).await.map_err(at)?;
            client.request(false, 0, 0, w, h).await.map_err(at)?;
            let reference = read_area(&mut client, &init, reference_format, whole(&init), Wait::Settled)
                .await
                .map_err(|e| at(format!("after SetPixelFormat to 32 bits per pixel, a full update: {e}")))?;
            for (format, what) in [
                (PixelFormat::RGB565_BE, "16 bits per pixel (RGB565, big endian)"),
                (PixelFormat::BGR233, "8 bits per pixel (BGR233)"),
                (PixelFormat::BGR888_BE, "32 bits per pixel (BGR888, big endian)"),
            ] {
                let at = |e: String| format!("display {}: after SetPixelFormat to {what}, {e}", d.name);
                client.set_pixel_format(format).await.map_err(at)?;
                client.request(false, 0, 0, w, h).await.map_err(at)?;
                let frame = read_area(&mut client, &init, format, whole(&init), Wait::Settled)
                    .await
                    .map_err(|e| at(format!("a full update: {e}")))?;
                // The bytes of the full update were counted at this format; a 1×1
                // update after it lands in step only if the server counted the same.
                let pixel = Area { x: 0, y: 0, w: 1, h: 1 };
                client.request(false, 0, 0, 1, 1).await.map_err(at)?;
                read_area(&mut client, &init, format, pixel, Wait::Covered).await.map_err(|e| {
                    at(format!(
                        "a 1×1 update after the full one: {e} (the full update's byte count did not match the format)"
                    ))
                })?;
                let (compared, percent, first) = compare(&reference, &frame, format);
                ensure!(
                    compared > 0 && percent >= FORMAT_MATCH_PERCENT,
                    "{}",
                    at(format!(
                        "only {percent}% of {compared} pixels show what the 32-bit frame shows there \
                         ({FORMAT_MATCH_PERCENT}% needed); first {}",
                        first.unwrap_or_default()
                    ))
                );
            }
            open.push(client);
        }
        Ok(())
    })
    .await
}

pub async fn idle_is_quiet(engine: &Arc<dyn Engine>, c: &DisplayCase) -> Check {
    with_run(engine, &[], async |run: &mut Run| {
        started(run, c).await?;
        let sandbox = run.sandbox();
        let mut open = Vec::new();
        for d in listed(&sandbox).await? {
            let at = |e: String| format!("display {}: {e}", d.name);
            let (mut client, init) = connect(&sandbox, &d).await.map_err(at)?;
            let (w, h) = (init.width, init.height);
            client.request(false, 0, 0, w, h).await.map_err(at)?;
            read_area(&mut client, &init, init.format, whole(&init), Wait::Settled)
                .await
                .map_err(|e| at(format!("the first full update: {e}")))?;
            // A viewer asks again as soon as each update arrives.
            let deadline = Instant::now() + IDLE_WINDOW;
            let (mut updates, mut bytes) = (0usize, 0usize);
            client.request(true, 0, 0, w, h).await.map_err(at)?;
            while let Some(update) = client.next_update_by(deadline).await.map_err(at)? {
                updates += 1;
                bytes += update.bytes;
                client.request(true, 0, 0, w, h).await.map_err(at)?;
            }
            let seconds = IDLE_WINDOW.as_secs_f64();
            let frame_bytes = w as usize * h as usize * init.format.bytes_per_pixel();
            let max_updates = IDLE_UPDATES_PER_SECOND * IDLE_WINDOW.as_secs() as usize;
            let max_bytes = frame_bytes * IDLE_WINDOW.as_secs() as usize;
            ensure!(
                updates <= max_updates && bytes <= max_bytes,
                "{}",
                at(format!(
                    "a viewer asking for incremental updates after the first full one got {updates} updates \
                     ({bytes} bytes) in {seconds} s, {:.0} updates/s; an idle viewer may get at most \
                     {IDLE_UPDATES_PER_SECOND} updates/s and one full frame ({frame_bytes} bytes) per second \
                     (answer an incremental request when something changed, not at once)",
                    updates as f64 / seconds
                ))
            );
            open.push(client);
        }
        Ok(())
    })
    .await
}
