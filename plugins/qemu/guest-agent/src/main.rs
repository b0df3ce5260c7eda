//! enginehost-agent: the guest side of the qemu engine (PROTOCOL.md).
//!
//! `enginehost-agent` (no arguments) fetches the task from the host's meta-data service at
//! `http://169.254.169.254/engine/v1/`, runs it with its log streamed live, reports the result,
//! and serves actions (artifacts, shells, kill) until the VM is stopped. It never exits.
//!
//! `enginehost-agent http-get URL` is a tiny HTTP client for task payloads (busybox wget crashes in
//! the test image): the body goes to stdout; exit 0 on 2xx, 1 on any other status, 2 on errors.
//!
//! Modules: `http` (the client), `task` (execute/log/result, kill, shared state), `actions` (poll
//! loop, list-folder, get-artifact), `shell` (exec-shell framing, pty), `reaper` (all waiting on
//! children), `sys` (raw syscalls, the task environment).

mod actions;
mod http;
mod reaper;
mod shell;
mod sys;
mod task;

use std::io::{self, Write};
use std::thread;

/// A line on the agent's stderr (the VM's serial console in the test image).
#[macro_export]
macro_rules! log {
    ($($arg:tt)*) => { eprintln!("enginehost-agent: {}", format_args!($($arg)*)) };
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        None => agent(),
        Some("http-get") => std::process::exit(http_get(&args[2..])),
        Some(_) => {
            eprintln!("usage: enginehost-agent            (run as the VM's guest agent)");
            eprintln!("       enginehost-agent http-get URL");
            std::process::exit(2);
        }
    }
}

fn agent() -> ! {
    reaper::start();
    let exec = task::fetch_execute();
    let agent: &'static task::Agent = Box::leak(Box::new(task::Agent::new(&exec.env)));
    let running = task::start(agent, &exec.command);
    thread::spawn(move || actions::poll_loop(agent));
    running.finish();
    loop {
        thread::park();
    }
}

/// `http-get URL`: GET an `http://host[:port]/path` URL, body to stdout.
fn http_get(args: &[String]) -> i32 {
    let [url] = args else {
        eprintln!("usage: enginehost-agent http-get URL");
        return 2;
    };
    let Some(rest) = url.strip_prefix("http://") else {
        eprintln!("http-get: only http:// URLs are supported: {url}");
        return 2;
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => match p.parse::<u16>() {
            Ok(p) => (h, p),
            Err(_) => {
                eprintln!("http-get: bad port in {url}");
                return 2;
            }
        },
        None => (authority, 80),
    };
    let result = (|| -> io::Result<u16> {
        let mut stream = http::connect(host, port)?;
        http::write_head(
            &mut stream,
            "GET",
            path,
            authority,
            &[("User-Agent", "enginehost-agent")],
        )?;
        let mut resp = http::read_response(stream)?;
        let mut out = io::stdout().lock();
        io::copy(&mut resp.body, &mut out)?;
        out.flush()?;
        Ok(resp.status)
    })();
    match result {
        Ok(status) if (200..300).contains(&status) => 0,
        Ok(status) => {
            eprintln!("http-get: {url}: HTTP {status}");
            1
        }
        Err(e) => {
            eprintln!("http-get: {url}: {e}");
            2
        }
    }
}
