//! A minimal HTTP/1.1 client over std `TcpStream`, just enough for PROTOCOL.md: one request per
//! connection (`Connection: close`), fixed or chunked request bodies, responses framed by
//! Content-Length, chunked encoding or connection close, and the `101 Switching Protocols`
//! upgrade that exec-shell uses. Retries and the meaning of status codes belong to the callers.

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream, ToSocketAddrs};
use std::time::Duration;

/// The host's meta-data service, as the guest sees it (slirp guestfwd).
pub const META_HOST: &str = "169.254.169.254";
pub const META_PORT: u16 = 80;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_HEAD_LINE: usize = 16 * 1024;
const MAX_HEADERS: usize = 100;

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// Connects to `host:port` (names resolve through musl, so `/etc/hosts` is enough), with
/// `TCP_NODELAY` so that every chunk leaves at once.
pub fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, format!("no address for {host}"));
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_nodelay(true)?;
                return Ok(s);
            }
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Writes a request line and headers. Adds `Host`, and `Connection: close` unless the caller
/// passes its own `Connection` header.
pub fn write_head(
    w: &mut impl Write,
    method: &str,
    path: &str,
    host: &str,
    headers: &[(&str, &str)],
) -> io::Result<()> {
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("connection")) {
        head.push_str("Connection: close\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())
}

/// A response: the status and a body reader that follows the framing.
pub struct Response {
    pub status: u16,
    pub body: Body,
}

/// Reads the status line and headers (skipping `1xx` other than 101). For 101 the body is the
/// raw upgraded stream, including any bytes already buffered.
pub fn read_response(stream: TcpStream) -> io::Result<Response> {
    let mut r = BufReader::with_capacity(64 * 1024, stream);
    loop {
        let status_line = read_line(&mut r)?;
        let mut parts = status_line.splitn(3, ' ');
        let version = parts.next().unwrap_or("");
        if !version.starts_with("HTTP/1.") {
            return Err(bad(format!("bad status line {status_line:?}")));
        }
        let status: u16 = parts
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| bad("bad status code"))?;
        let mut headers = Vec::new();
        loop {
            let line = read_line(&mut r)?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= MAX_HEADERS {
                return Err(bad("too many headers"));
            }
            let (k, v) = line.split_once(':').ok_or_else(|| bad("bad header line"))?;
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
        if (100..200).contains(&status) && status != 101 {
            continue;
        }
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let framing = if status == 101 {
            Framing::Raw
        } else if status == 204 || status == 304 {
            Framing::Length(0)
        } else if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            Framing::Chunked { left: 0, done: false }
        } else if let Some(n) = find("content-length") {
            Framing::Length(n.parse().map_err(|_| bad("bad content-length"))?)
        } else {
            Framing::Raw
        };
        return Ok(Response {
            status,
            body: Body { r, framing },
        });
    }
}

fn read_line(r: &mut impl BufRead) -> io::Result<String> {
    let mut buf = Vec::new();
    r.by_ref().take(MAX_HEAD_LINE as u64).read_until(b'\n', &mut buf)?;
    if buf.last() != Some(&b'\n') {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "connection closed in the response head",
        ));
    }
    while matches!(buf.last(), Some(b'\n' | b'\r')) {
        buf.pop();
    }
    String::from_utf8(buf).map_err(|_| bad("response head is not UTF-8"))
}

enum Framing {
    Length(u64),
    Chunked { left: u64, done: bool },
    Raw,
}

/// A response body, decoded. `into_inner` gives the buffered stream back (for upgrades).
pub struct Body {
    r: BufReader<TcpStream>,
    framing: Framing,
}

impl Body {
    pub fn into_inner(self) -> BufReader<TcpStream> {
        self.r
    }

    /// Reads the whole body, refusing more than `limit` bytes.
    pub fn read_all(mut self, limit: u64) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        (&mut self).take(limit + 1).read_to_end(&mut out)?;
        if out.len() as u64 > limit {
            return Err(bad("response body too large"));
        }
        Ok(out)
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match &mut self.framing {
            Framing::Raw => self.r.read(buf),
            Framing::Length(left) => {
                if *left == 0 {
                    return Ok(0);
                }
                let max = buf.len().min(*left as usize);
                let n = self.r.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "body shorter than content-length",
                    ));
                }
                *left -= n as u64;
                Ok(n)
            }
            Framing::Chunked { left, done } => {
                if *done {
                    return Ok(0);
                }
                if *left == 0 {
                    let line = read_line(&mut self.r)?;
                    let size = line.split(';').next().unwrap_or("").trim();
                    *left = u64::from_str_radix(size, 16).map_err(|_| bad("bad chunk size"))?;
                    if *left == 0 {
                        while !read_line(&mut self.r)?.is_empty() {} // trailers
                        *done = true;
                        return Ok(0);
                    }
                }
                let max = buf.len().min(*left as usize);
                let n = self.r.read(&mut buf[..max])?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "connection closed inside a chunk",
                    ));
                }
                *left -= n as u64;
                if *left == 0 && !read_line(&mut self.r)?.is_empty() {
                    return Err(bad("missing CRLF after chunk"));
                }
                Ok(n)
            }
        }
    }
}

/// A request whose body goes out as `Transfer-Encoding: chunked`, one chunk per `chunk` call.
pub struct ChunkedRequest {
    stream: TcpStream,
}

impl ChunkedRequest {
    /// Connects to the meta-data service and sends the head of `method path`.
    pub fn start(method: &str, path: &str, headers: &[(&str, &str)]) -> io::Result<ChunkedRequest> {
        let mut stream = connect(META_HOST, META_PORT)?;
        let mut all: Vec<(&str, &str)> = vec![("Transfer-Encoding", "chunked")];
        all.extend_from_slice(headers);
        write_head(&mut stream, method, path, META_HOST, &all)?;
        Ok(ChunkedRequest { stream })
    }

    /// Sends one chunk (empty data is skipped: an empty chunk would end the body).
    pub fn chunk(&mut self, data: &[u8]) -> io::Result<()> {
        if data.is_empty() {
            return Ok(());
        }
        let mut msg = format!("{:x}\r\n", data.len()).into_bytes();
        msg.extend_from_slice(data);
        msg.extend_from_slice(b"\r\n");
        self.stream.write_all(&msg)
    }

    /// Sends the terminating zero chunk and returns the response status.
    pub fn finish(mut self, timeout: Duration) -> io::Result<u16> {
        self.stream.write_all(b"0\r\n\r\n")?;
        self.stream.set_read_timeout(Some(timeout))?;
        let resp = read_response(self.stream)?;
        let status = resp.status;
        let _ = resp.body.read_all(1 << 20);
        Ok(status)
    }

    /// Drops the connection without the terminating chunk: the host sees a truncated body.
    pub fn abandon(self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}

/// One request to the meta-data service with a fixed body; returns (status, body).
pub fn request(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    timeout: Duration,
) -> io::Result<(u16, Vec<u8>)> {
    let mut stream = connect(META_HOST, META_PORT)?;
    stream.set_read_timeout(Some(timeout))?;
    let len = body.len().to_string();
    let mut all: Vec<(&str, &str)> = vec![("Content-Length", &len)];
    all.extend_from_slice(headers);
    write_head(&mut stream, method, path, META_HOST, &all)?;
    stream.write_all(body)?;
    let resp = read_response(stream)?;
    let status = resp.status;
    Ok((status, resp.body.read_all(16 << 20)?))
}

/// Percent-encodes a query value (everything but RFC 3986 unreserved characters).
pub fn encode_query(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
