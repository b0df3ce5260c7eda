//! The interactive server: its protocol through a real WebSocket client against
//! real native shells and the mock's display, and its two pages in a real
//! Chromium (driven by chromedriver) — typing into a running task's shell and
//! reading the mock's screen.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use enginehost::contract::{Engine, Sandbox};
use enginehost::policy::InteractiveSettings;
use enginehost::worker::interactive::{InteractiveServer, Session};
use futures::{SinkExt as _, StreamExt as _};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

use crate::common::*;
use crate::engines::engine_from;
use crate::engines::native::AS_WORKER;

async fn server(max_connections: u32) -> InteractiveServer {
    InteractiveServer::start(&InteractiveSettings {
        listen: "127.0.0.1:0".parse().unwrap(),
        public_url: None,
        expires: Duration::from_secs(600),
        max_connections,
    })
    .await
    .unwrap()
}

/// The token of a session's link.
fn token(session: &Session) -> String {
    session.shell_url.rsplit_once('#').unwrap().1.to_string()
}

async fn get(server: &InteractiveServer, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://{}/{path}", server.address()))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// A WebSocket to `path`, or the HTTP status that refused it.
async fn socket(server: &InteractiveServer, path: &str) -> Result<Ws, u16> {
    match tokio_tungstenite::connect_async(format!("ws://{}/{path}", server.address())).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(e) => panic!("connecting to {path}: {e}"),
    }
}

/// What a shell socket said until it closed: stdout, stderr, the exit message and
/// the close code.
#[derive(Debug, Default)]
struct Transcript {
    stdout: String,
    stderr: String,
    exit: Option<Value>,
    close: Option<u16>,
}

async fn read_until_closed(ws: &mut Ws, until: impl Fn(&Transcript) -> bool) -> Transcript {
    let mut t = Transcript::default();
    let read = async {
        while let Some(message) = ws.next().await {
            match message.unwrap() {
                Message::Binary(b) if b[0] == 1 => t.stdout.push_str(&String::from_utf8_lossy(&b[1..])),
                Message::Binary(b) if b[0] == 2 => t.stderr.push_str(&String::from_utf8_lossy(&b[1..])),
                Message::Text(text) => t.exit = Some(serde_json::from_str(&text).unwrap()),
                Message::Close(frame) => {
                    t.close = Some(frame.map_or(1005, |f| u16::from(f.code)));
                    break;
                }
                _ => {}
            }
            if until(&t) {
                break;
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(30), read)
        .await
        .unwrap_or_else(|_| panic!("the shell socket said only {t:?} in 30 s"));
    t
}

fn stdin(text: &str) -> Message {
    let mut frame = vec![0u8];
    frame.extend_from_slice(text.as_bytes());
    Message::Binary(frame.into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shells_over_the_socket_and_a_token_that_dies_with_its_task() {
    let engine = engine_from("native", AS_WORKER).await;
    let server = server(3).await;
    let session = server.session().unwrap();
    let t = token(&session);
    // Before the sandbox starts: 503; a token nobody was given: 404, as with no task.
    assert_eq!(get(&server, &format!("session/{t}")).await.0, 503);
    let wrong = "0".repeat(48);
    let unknown = get(&server, &format!("session/{wrong}")).await;
    assert_eq!(unknown.0, 404);

    let sandbox = started(&engine, json!({"command": ["sleep", "60"]})).await;
    session.attach(sandbox.clone());
    assert_eq!(
        get(&server, &format!("session/{t}")).await,
        (200, r#"{"state":"running"}"#.into())
    );
    assert_eq!(
        get(&server, &format!("session/{wrong}")).await,
        unknown,
        "a wrong token learns nothing"
    );
    // Not a WebSocket, a bad tty, an unknown parameter: 400, saying what is right.
    let (status, text) = get(&server, &format!("shell/{t}")).await;
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("open the page"), "{text}");
    assert_eq!(socket(&server, &format!("shell/{t}?tty=maybe")).await.err(), Some(400));
    assert_eq!(socket(&server, &format!("shell/{t}?colour=red")).await.err(), Some(400));
    assert_eq!(socket(&server, &format!("shell/{wrong}")).await.err(), Some(404));

    // A command with stdin, stdout, stderr and an exit code.
    let script = "read x; echo got $x; echo oops >&2; exit 3";
    let mut ws = socket(
        &server,
        &format!("shell/{t}?command=sh&command=-c&command={}", urlencode(script)),
    )
    .await
    .unwrap();
    ws.send(stdin("hello\n")).await.unwrap();
    ws.send(Message::Binary(vec![0u8].into())).await.unwrap();
    let said = read_until_closed(&mut ws, |_| false).await;
    assert_eq!(said.stdout, "got hello\n", "{said:?}");
    assert_eq!(said.stderr, "oops\n", "{said:?}");
    assert_eq!(said.exit, Some(json!({"type": "exit", "success": false})), "{said:?}");
    assert_eq!(said.close, Some(1005), "a normal close: {said:?}");
    drop(ws);

    // The default shell with a tty, resized, does arithmetic.
    let mut tty = socket(&server, &format!("shell/{t}?tty=true")).await.unwrap();
    tty.send(Message::Text(r#"{"type":"resize","cols":100,"rows":30}"#.into()))
        .await
        .unwrap();
    tty.send(stdin("stty size; echo $((6*7))\n")).await.unwrap();
    let said = read_until_closed(&mut tty, |t| t.stdout.contains("42")).await;
    assert!(said.stdout.contains("30 100"), "{said:?}");

    // Bounded: a third connection while two are open is refused; then the task ends.
    let mut second = socket(&server, &format!("shell/{t}?command=sleep&command=50"))
        .await
        .unwrap();
    let mut third = socket(&server, &format!("shell/{t}?command=sleep&command=50"))
        .await
        .unwrap();
    assert_eq!(
        socket(&server, &format!("shell/{t}?command=true")).await.err(),
        Some(429),
        "max-connections is 3"
    );
    drop(third.close(None).await);
    // The task ends (the kill's own answer is not what this test is about).
    if let Err(e) = sandbox.kill().await {
        eprintln!("kill: {e}");
    }
    session.end();
    for ws in [&mut tty, &mut second] {
        let said = read_until_closed(ws, |_| false).await;
        assert_eq!(said.close, Some(4410), "the task's end closes its shells: {said:?}");
    }
    let _ = sandbox.wait_for_result().await;
    // The token is dead for good: 410 for whoever had it, 404 still for the rest.
    let (status, text) = get(&server, &format!("session/{t}")).await;
    assert_eq!(status, 410, "{text}");
    assert!(text.contains("terminated"), "{text}");
    assert_eq!(socket(&server, &format!("shell/{t}")).await.err(), Some(410));
    assert_eq!(get(&server, &format!("session/{wrong}")).await, unknown);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mock_display_over_the_socket_and_the_seed_status_codes() {
    let engine = start(&MOCK).await;
    let server = server(8).await;
    let session = server.session().unwrap();
    let t = token(&session);
    let sandbox = started(&engine, mock_payload(60_000, "true", "")).await;
    session.attach(sandbox.clone());
    let (status, text) = get(&server, &format!("displays/{t}")).await;
    assert_eq!(status, 200, "{text}");
    let displays: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(displays[0]["name"], "MockDisplay", "{displays}");
    assert_eq!(
        (displays[0]["width"].clone(), displays[0]["height"].clone()),
        (json!(480), json!(640))
    );
    // The seed's codes: no such display 404, a bad request 400.
    assert_eq!(
        socket(&server, &format!("display/{t}?display=Nope")).await.err(),
        Some(404)
    );
    assert_eq!(socket(&server, &format!("display/{t}")).await.err(), Some(400));
    // Raw RFB: the server speaks first, with its version.
    let mut ws = socket(&server, &format!("display/{t}?display=MockDisplay"))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().as_ref(), b"RFB 003.008\n");
    sandbox.abort().await.unwrap();
    session.end();
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(closed, Some(4410));
    assert_eq!(get(&server, &format!("displays/{t}")).await.0, 410);
    // The pages and their libraries are served from the binary, with a policy
    // that loads nothing from elsewhere.
    for page in [
        "shell.html",
        "display.html",
        "assets/xterm.mjs",
        "assets/novnc.mjs",
        "assets/LICENSE.novnc",
    ] {
        let r = reqwest::get(format!("http://{}/{page}", server.address()))
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{page}");
    }
    let r = reqwest::get(format!("http://{}/shell.html", server.address()))
        .await
        .unwrap();
    assert!(
        r.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// ---- In a real browser ----

/// chromedriver on a free port, and a headless Chromium session through it; `None`
/// (the test skips, saying why) where Debian's chromium and chromium-driver are
/// missing, unless ENGINEHOST_REQUIRE_CHROMIUM is set. Dropped (a test ended or
/// panicked), it kills chromedriver's process group, Chromium with it, and removes
/// the temporary directory both of them wrote to.
pub(crate) struct Browser {
    pub(crate) client: fantoccini::Client,
    driver: tokio::process::Child,
    _tmp: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(pid) = self.driver.id() {
            // SAFETY: a signal to the process group this test started.
            unsafe { libc::kill(-(pid as i32), libc::SIGKILL) };
        }
    }
}

pub(crate) async fn browser() -> Option<Browser> {
    let installed = ["/usr/bin/chromium", "/usr/bin/chromedriver"]
        .iter()
        .all(|p| std::path::Path::new(p).exists());
    if !installed {
        assert!(
            std::env::var_os("ENGINEHOST_REQUIRE_CHROMIUM").is_none(),
            "ENGINEHOST_REQUIRE_CHROMIUM is set, but /usr/bin/chromium or /usr/bin/chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!("skipped: no /usr/bin/chromium and /usr/bin/chromedriver (apt-get install chromium chromium-driver)");
        return None;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // Chromium's profile, singleton socket and scoped directories land here, not in /tmp.
    let tmp = tempfile::tempdir().unwrap();
    let driver = tokio::process::Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .env("TMPDIR", tmp.path())
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({"binary": "/usr/bin/chromium",
               "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1000,760"]}),
    );
    let url = format!("http://127.0.0.1:{port}");
    for _ in 0..100 {
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        match fantoccini::ClientBuilder::new(connector)
            .capabilities(caps.clone())
            .connect(&url)
            .await
        {
            Ok(client) => {
                return Some(Browser {
                    client,
                    driver,
                    _tmp: tmp,
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
    panic!("chromedriver did not answer on {url} within 10 s");
}

impl Browser {
    async fn eval(&self, script: &str) -> Value {
        self.client.execute(script, vec![]).await.expect(script)
    }

    /// Polls `script` until `ok` holds of its value (20 s at most).
    async fn until(&self, what: &str, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let mut last = Value::Null;
        for _ in 0..200 {
            last = self.eval(script).await;
            if ok(&last) {
                return last;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let status = self.eval("return document.getElementById('status').textContent").await;
        panic!("{what}: still {last} after 20 s (the page says {status})");
    }

    pub(crate) async fn state(&self, want: &str) {
        self.until(
            &format!("the page's state {want}"),
            "return document.body.dataset.state",
            |v| v == want,
        )
        .await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("a screenshot");
        let dir = screenshots();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), png).unwrap();
    }
}

/// Where the pages' screenshots go (docs/interactive.md links them).
fn screenshots() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("interactive")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_types_into_a_running_tasks_shell_page_in_chromium() {
    let Some(browser) = browser().await else { return };
    let engine = engine_from("native", AS_WORKER).await;
    let server = server(8).await;
    let session = server.session().unwrap();
    let sandbox = started(&engine, json!({"command": ["sleep", "120"]})).await;
    session.attach(sandbox.clone());

    browser.client.goto(&session.shell_url).await.unwrap();
    browser.state("connected").await;
    let keys = browser
        .client
        .find(fantoccini::Locator::Css(".xterm-helper-textarea"))
        .await
        .expect("xterm.js's input");
    keys.send_keys("echo $((6*7))\n").await.unwrap();
    let text = browser
        .until("42 on the terminal", "return window.terminalText()", |v| {
            v.as_str().is_some_and(|t| t.lines().any(|l| l.trim() == "42"))
        })
        .await;
    assert!(
        text.as_str().unwrap().contains("echo $((6*7))"),
        "the typed line echoes: {text}"
    );
    // The terminal fills the window, and follows it.
    let before = browser
        .eval("return [window.innerWidth, document.querySelector('.xterm-screen').clientWidth]")
        .await;
    browser.screenshot("shell.png").await;
    browser.client.set_window_size(700, 500).await.unwrap();
    browser
        .until(
            "the terminal to shrink with the window",
            "return document.querySelector('.xterm-screen').clientWidth",
            |v| v.as_u64().is_some_and(|w| w < before[1].as_u64().unwrap()),
        )
        .await;

    // The task ends: the page says so, and the link is dead after a reload too.
    sandbox.kill().await.unwrap();
    let _ = sandbox.wait_for_result().await;
    session.end();
    browser.state("terminated").await;
    browser.client.refresh().await.unwrap();
    browser.state("terminated").await;
    let said = browser
        .eval("return document.getElementById('status').textContent")
        .await;
    assert!(said.as_str().unwrap().contains("terminated"), "{said}");
    // A wrong token: the same 404 as for no task at all.
    let base = session.shell_url.split('#').next().unwrap().to_string();
    browser
        .client
        .goto(&format!("{base}#{}", "ab".repeat(24)))
        .await
        .unwrap();
    // Only the fragment changed: the page is not loaded again by itself.
    browser.client.refresh().await.unwrap();
    browser.state("unknown").await;
    browser.client.clone().close().await.unwrap();
}

/// Opens the display page of `sandbox` and waits until `ok` holds of what the
/// viewer's canvas shows: `[width, height, [[x, y, r, g, b] for each of sample]]`;
/// saves a screenshot as `shot`, ends the session and sees the page say so.
pub(crate) async fn display_page(
    browser: &Browser,
    sandbox: Arc<dyn Sandbox>,
    sample: &[(u32, u32)],
    ok: impl Fn(&Value) -> bool,
    shot: &str,
) -> Value {
    let server = server(8).await;
    let session = server.session().unwrap();
    session.attach(sandbox);
    browser.client.goto(&session.display_url).await.unwrap();
    browser.state("connected").await;
    let script = format!(
        "const c = window.displayCanvas(); if (!c) return null; const g = c.getContext('2d'); \
         return [c.width, c.height, {sample}.map(([x, y]) => {{ const d = g.getImageData(x, y, 1, 1).data; \
         return [x, y, d[0], d[1], d[2]]; }})];",
        sample = serde_json::to_string(sample).unwrap()
    );
    let seen = browser.until(&format!("the {shot} canvas"), &script, ok).await;
    browser.screenshot(shot).await;
    session.end();
    browser.state("terminated").await;
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_sees_the_mock_screen_on_the_display_page_in_chromium() {
    let Some(browser) = browser().await else { return };
    let engine: Arc<dyn Engine> = start(&MOCK).await;
    let sandbox = started(&engine, mock_payload(120_000, "true", "")).await;
    // The seed's gradient at the top left, steel blue beyond.
    let want = [[0, 0, 0], [75, 75, 75], [70, 130, 180]];
    let close =
        |got: &Value, want: &[u64; 3]| (0..3).all(|i| got[i + 2].as_u64().is_some_and(|c| c.abs_diff(want[i]) <= 4));
    display_page(
        &browser,
        sandbox.clone(),
        &[(0, 0), (100, 50), (300, 400)],
        |v| {
            v[0] == 480
                && v[1] == 640
                && v[2]
                    .as_array()
                    .is_some_and(|got| got.iter().zip(&want).all(|(g, w)| close(g, w)))
        },
        "display.png",
    )
    .await;
    sandbox.abort().await.unwrap();
    browser.client.clone().close().await.unwrap();
}
