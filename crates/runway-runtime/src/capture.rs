//! Captures a guest's stdout/stderr line by line into [`InvocationEvents`].
//!
//! Output is bounded per request and stream: past [`MAX_BYTES`] further bytes
//! are dropped (and one note says so) rather than failing the guest's write,
//! because a chatty app must not be broken by its own logging.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::{InvocationEvents, Stream};

/// Most output kept per request and stream.
const MAX_BYTES: usize = 64 * 1024;
/// Longest line before it is cut into pieces.
const MAX_LINE: usize = 8 * 1024;

#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Lines>>,
}

struct Lines {
    stream: Stream,
    events: Arc<dyn InvocationEvents>,
    partial: Vec<u8>,
    written: usize,
    truncated: bool,
}

impl Capture {
    pub(crate) fn new(stream: Stream, events: Arc<dyn InvocationEvents>) -> Capture {
        Capture {
            inner: Arc::new(Mutex::new(Lines {
                stream,
                events,
                partial: Vec::new(),
                written: 0,
                truncated: false,
            })),
        }
    }

    fn write(&self, bytes: &[u8]) {
        self.inner
            .lock()
            .expect("capture lock poisoned")
            .push(bytes);
    }

    /// Emits a trailing line without newline; called when the request ends.
    pub(crate) fn finish(&self) {
        let mut lines = self.inner.lock().expect("capture lock poisoned");
        if !lines.partial.is_empty() {
            let line = std::mem::take(&mut lines.partial);
            lines.emit(&line);
        }
    }
}

impl Lines {
    fn push(&mut self, bytes: &[u8]) {
        let room = MAX_BYTES.saturating_sub(self.written);
        let kept = &bytes[..bytes.len().min(room)];
        self.written += kept.len();
        for &b in kept {
            if b == b'\n' {
                let line = std::mem::take(&mut self.partial);
                self.emit(&line);
            } else {
                self.partial.push(b);
                if self.partial.len() >= MAX_LINE {
                    let line = std::mem::take(&mut self.partial);
                    self.emit(&line);
                }
            }
        }
        if kept.len() < bytes.len() && !self.truncated {
            self.truncated = true;
            let note =
                format!("[runway: output beyond {MAX_BYTES} bytes in one request was dropped]");
            self.events.output(self.stream, &note);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = String::from_utf8_lossy(line);
        self.events.output(self.stream, line.trim_end_matches('\r'));
    }
}

impl IsTerminal for Capture {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for Capture {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

#[async_trait::async_trait]
impl Pollable for Capture {
    async fn ready(&mut self) {}
}

impl OutputStream for Capture {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        Capture::write(self, &bytes);
        Ok(())
    }

    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(MAX_LINE)
    }
}

impl AsyncWrite for Capture {
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Capture::write(&self, buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
