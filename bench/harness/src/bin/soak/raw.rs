//! HTTP/1.1 over a bare `TcpStream`, for the requests a regular client will not send:
//! bodies larger than announced limits, cut short, or chunked past the limit.

use std::io::ErrorKind;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A response read off the wire.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) close: bool,
    pub(crate) body: Vec<u8>,
}

/// How a body is framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// `Content-Length` with this value (which may differ from what is sent).
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// The request head.
pub(crate) fn head(
    addr: SocketAddr,
    target: &str,
    content_type: &str,
    signature: &str,
    framing: Framing,
) -> Vec<u8> {
    let framing = match framing {
        Framing::Length(n) => format!("Content-Length: {n}"),
        Framing::Chunked => "Transfer-Encoding: chunked".to_owned(),
    };
    format!(
        "POST {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: {content_type}\r\n\
         X-Twilio-Signature: {signature}\r\n{framing}\r\n\r\n"
    )
    .into_bytes()
}

/// `data` as one chunk of a chunked body.
pub(crate) fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// The chunk that ends a chunked body.
pub(crate) const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

pub(crate) async fn connect(addr: SocketAddr) -> Result<TcpStream, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    Ok(stream)
}

/// Reads one response (head and `Content-Length` body). `Ok(None)`: the connection ended,
/// cleanly or by a reset, before the first byte of a response.
pub(crate) async fn read_answer<R: AsyncRead + Unpin>(
    reader: &mut R,
) -> Result<Option<Answer>, String> {
    let mut buf = Vec::new();
    let mut scratch = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 64 * 1024 {
            return Err("response head over 64 KiB".to_owned());
        }
        match reader.read(&mut scratch).await {
            Ok(0) if buf.is_empty() => return Ok(None),
            Ok(0) => return Err("connection closed inside a response head".to_owned()),
            Ok(n) => buf.extend_from_slice(&scratch[..n]),
            Err(e) if buf.is_empty() && is_reset(e.kind()) => return Ok(None),
            Err(e) => return Err(format!("reading a response: {e}")),
        }
    };
    let head = std::str::from_utf8(&buf[..head_end]).map_err(|_| "response head not UTF-8")?;
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.strip_prefix("HTTP/1.1 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("bad status line in {head:?}"))?;
    let mut length = 0usize;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => {
                length = value
                    .parse()
                    .map_err(|_| format!("bad Content-Length {value:?}"))?;
            }
            "transfer-encoding" => return Err(format!("unexpected Transfer-Encoding {value}")),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = reader
            .read(&mut scratch)
            .await
            .map_err(|e| format!("reading a response body: {e}"))?;
        if n == 0 {
            return Err("connection closed inside a response body".to_owned());
        }
        body.extend_from_slice(&scratch[..n]);
    }
    if body.len() > length {
        return Err(format!("{} bytes after the response", body.len() - length));
    }
    Ok(Some(Answer {
        status,
        close,
        body,
    }))
}

/// How the peer ended a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closed {
    /// End of stream.
    Eof,
    /// A reset (the kernel's answer to data the server never read).
    Reset,
}

/// Waits for the peer to close the connection (end of stream or a reset) within `limit`,
/// sending nothing more.
pub(crate) async fn expect_closed<R: AsyncRead + Unpin>(
    reader: &mut R,
    limit: Duration,
) -> Result<Closed, String> {
    let mut scratch = [0u8; 1024];
    match tokio::time::timeout(limit, reader.read(&mut scratch)).await {
        Err(_) => Err(format!(
            "the connection stayed open {} s after the answer",
            limit.as_secs()
        )),
        Ok(Ok(0)) => Ok(Closed::Eof),
        Ok(Ok(n)) => Err(format!("{n} unexpected bytes after the answer")),
        Ok(Err(e)) if is_reset(e.kind()) => Ok(Closed::Reset),
        Ok(Err(e)) => Err(format!("reading after the answer: {e}")),
    }
}

pub(crate) fn is_reset(kind: ErrorKind) -> bool {
    matches!(
        kind,
        ErrorKind::ConnectionReset | ErrorKind::BrokenPipe | ErrorKind::ConnectionAborted
    )
}

/// Writes `parts` in order, stopping quietly at the first error (the server may close the
/// connection before reading them all); returns how many bytes went out.
pub(crate) async fn write_parts<W: AsyncWriteExt + Unpin>(
    writer: &mut W,
    parts: &[Vec<u8>],
) -> usize {
    let mut sent = 0;
    for part in parts {
        if writer.write_all(part).await.is_err() {
            break;
        }
        sent += part.len();
    }
    sent
}
