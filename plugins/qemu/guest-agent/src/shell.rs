//! exec-shell: upgrades `POST /engine/v1/reply?id=<id>` to the `enginehost-shell` protocol and
//! runs the command (default `/bin/sh`) in the task's env and cwd, in its own session, either on
//! three pipes or on a pty (stderr merged). Frames both ways are `[type u8][len u32 BE][payload]`:
//! host → agent 0 stdin, 1 stdin EOF, 2 resize (cols u16, rows u16), 3 abort; agent → host
//! 10 stdout, 11 stderr, 12 exit (i32 BE: code, or -signal), then the agent closes.

use std::fs::File;
use std::io::{self, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use crate::http::{self, META_HOST, META_PORT};
use crate::reaper::{self, Exit};
use crate::task::Agent;
use crate::{log, sys};

const STDIN: u8 = 0;
const STDIN_EOF: u8 = 1;
const RESIZE: u8 = 2;
const ABORT: u8 = 3;
const STDOUT: u8 = 10;
const STDERR: u8 = 11;
const EXIT: u8 = 12;
const MAX_FRAME: usize = 1 << 20;
/// After the shell exits, how long its output may stay open before the exit frame goes anyway.
const OUTPUT_GRACE: Duration = Duration::from_secs(5);

/// The agent → host half of the connection; frames after the exit frame are dropped.
struct Frames {
    stream: Mutex<Option<TcpStream>>,
    closed: AtomicBool,
}

impl Frames {
    fn send(&self, kind: u8, payload: &[u8]) -> io::Result<()> {
        let mut msg = Vec::with_capacity(5 + payload.len());
        msg.push(kind);
        msg.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        msg.extend_from_slice(payload);
        match &mut *self.stream.lock().unwrap() {
            Some(s) => s.write_all(&msg),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "shell already closed")),
        }
    }

    /// Kills the shell's process group, unless the shell is over (its pid may be reused by then).
    /// (A flag, not the stream's lock: a blocked write must not delay an abort.)
    fn abort(&self, pid: i32) {
        if !self.closed.load(Ordering::SeqCst) {
            reaper::signal_group_if_running(pid, libc::SIGKILL);
        }
    }

    /// Sends the exit frame and closes the connection.
    fn close(&self, exit: i32) {
        self.closed.store(true, Ordering::SeqCst);
        let _ = self.send(EXIT, &exit.to_be_bytes());
        if let Some(s) = self.stream.lock().unwrap().take() {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

struct Spawned {
    pid: i32,
    stdin: Box<dyn Write + Send>,
    outputs: Vec<(u8, Box<dyn Read + Send>)>,
    pty: Option<File>,
}

/// Serves one exec-shell action to its end.
pub fn run(agent: &Agent, reply_to: &str, command: &[String], tty: bool) -> io::Result<()> {
    let mut stream = http::connect(META_HOST, META_PORT)?;
    let headers = [("Connection", "Upgrade"), ("Upgrade", "enginehost-shell")];
    http::write_head(&mut stream, "POST", reply_to, META_HOST, &headers)?;
    let resp = http::read_response(stream)?;
    if resp.status != 101 {
        return Err(io::Error::other(format!("upgrade answered {}", resp.status)));
    }
    let mut input = resp.body.into_inner();
    let stream = Mutex::new(Some(input.get_ref().try_clone()?));
    let frames = Arc::new(Frames {
        stream,
        closed: AtomicBool::new(false),
    });

    let argv = if command.is_empty() {
        vec!["/bin/sh".to_string()]
    } else {
        command.to_vec()
    };
    let sp = match spawn(agent, &argv, tty) {
        Ok(sp) => sp,
        Err(e) => {
            let msg = format!("enginehost-agent: cannot run {argv:?}: {e}\n");
            let _ = frames.send(if tty { STDOUT } else { STDERR }, msg.as_bytes());
            frames.close(127);
            return Ok(());
        }
    };
    let pid = sp.pid;
    agent.add_shell(pid);

    // stdin: written on its own thread so that a shell not reading never blocks abort frames.
    let (stdin_tx, stdin_rx) = mpsc::channel::<Option<Vec<u8>>>();
    let mut stdin = sp.stdin;
    thread::spawn(move || {
        while let Ok(Some(data)) = stdin_rx.recv() {
            if stdin.write_all(&data).is_err() {
                break;
            }
        }
        if tty {
            let _ = stdin.write_all(&[4]); // EOF on a terminal: ^D (VEOF)
        }
    });

    // host → agent frames.
    let pty = sp.pty;
    let frames_in = frames.clone();
    thread::spawn(move || {
        loop {
            let frame = read_frame(&mut input);
            match frame {
                Ok((STDIN, data)) => drop(stdin_tx.send(Some(data))),
                Ok((STDIN_EOF, _)) => drop(stdin_tx.send(None)),
                Ok((RESIZE, p)) if p.len() == 4 => {
                    if let Some(m) = &pty {
                        let _ = sys::set_winsize(m, u16::from_be_bytes([p[0], p[1]]), u16::from_be_bytes([p[2], p[3]]));
                    }
                }
                Ok((ABORT, _)) => frames_in.abort(pid),
                Ok(_) => {}
                Err(_) => {
                    // The host closed (or broke) the connection: that is an abort.
                    frames_in.abort(pid);
                    return;
                }
            }
        }
    });

    // agent → host output.
    let (done_tx, done_rx) = mpsc::channel();
    let n_outputs = sp.outputs.len();
    for (kind, mut out) in sp.outputs {
        let (frames, done_tx) = (frames.clone(), done_tx.clone());
        thread::spawn(move || {
            let mut buf = vec![0u8; 32 * 1024];
            loop {
                match out.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if frames.send(kind, &buf[..n]).is_err() {
                            frames.abort(pid);
                            break;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => break, // EIO on a pty master once every slave fd is closed
                }
            }
            let _ = done_tx.send(());
        });
    }

    let exit: Exit = reaper::wait(pid);
    agent.remove_shell(pid);
    for _ in 0..n_outputs {
        if done_rx.recv_timeout(OUTPUT_GRACE).is_err() {
            log!("shell {pid}: output still open after its exit; sending the exit anyway");
            break;
        }
    }
    frames.close(exit.as_i32());
    Ok(())
}

fn spawn(agent: &Agent, argv: &[String], tty: bool) -> io::Result<Spawned> {
    if tty {
        let (master, slave) = sys::open_pty()?;
        let mut env = agent.env.clone();
        env.entry("TERM".to_string()).or_insert_with(|| "xterm".to_string());
        let mut cmd = sys::command_with_ctty(argv, &env);
        cmd.stdin(Stdio::from(slave.try_clone()?))
            .stdout(Stdio::from(slave.try_clone()?))
            .stderr(Stdio::from(slave));
        let child = reaper::spawn(&mut cmd, true)?;
        drop(cmd); // closes our copies of the slave: EIO on the master then means "all closed"
        Ok(Spawned {
            pid: child.id() as i32,
            stdin: Box::new(master.try_clone()?),
            outputs: vec![(STDOUT, Box::new(master.try_clone()?))],
            pty: Some(master),
        })
    } else {
        let mut cmd = sys::command(argv, &agent.env);
        cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = reaper::spawn(&mut cmd, true)?;
        Ok(Spawned {
            pid: child.id() as i32,
            stdin: Box::new(child.stdin.take().unwrap()),
            outputs: vec![
                (STDOUT, Box::new(child.stdout.take().unwrap())),
                (STDERR, Box::new(child.stderr.take().unwrap())),
            ],
            pty: None,
        })
    }
}

fn read_frame(r: &mut BufReader<TcpStream>) -> io::Result<(u8, Vec<u8>)> {
    let mut head = [0u8; 5];
    r.read_exact(&mut head)?;
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    if len > MAX_FRAME {
        return Err(io::Error::new(io::ErrorKind::InvalidData, "frame too large"));
    }
    let mut payload = vec![0u8; len];
    r.read_exact(&mut payload)?;
    Ok((head[0], payload))
}
