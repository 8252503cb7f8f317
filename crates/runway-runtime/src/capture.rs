//! Captures a guest's stdout/stderr line by line into [`InvocationEvents`].
//!
//! A line longer than [`MAX_LINE`] bytes is cut there: the rest of it, up to
//! its newline, is dropped, and the line ends with a marker saying how long it
//! was. Invalid UTF-8 becomes U+FFFD. How much an app may log is bounded per
//! app by the log writer (lines/s and bytes/s, `runway_store::LogLimits`),
//! which drops the excess and says how much in a marker row; a guest's write
//! never fails because of its own logging.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

use crate::{InvocationEvents, Stream};

/// Longest line kept; the rest of a longer line is dropped (with a marker).
pub(crate) const MAX_LINE: usize = 8 * 1024;

#[derive(Clone)]
pub(crate) struct Capture {
    inner: Arc<Mutex<Lines>>,
}

struct Lines {
    stream: Stream,
    events: Arc<dyn InvocationEvents>,
    /// The current line, at most [`MAX_LINE`] bytes.
    partial: Vec<u8>,
    /// Bytes of the current line dropped beyond [`MAX_LINE`].
    cut: usize,
}

impl Capture {
    pub(crate) fn new(stream: Stream, events: Arc<dyn InvocationEvents>) -> Capture {
        Capture {
            inner: Arc::new(Mutex::new(Lines {
                stream,
                events,
                partial: Vec::new(),
                cut: 0,
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
        if !lines.partial.is_empty() || lines.cut > 0 {
            lines.emit();
        }
    }
}

impl Lines {
    fn push(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            let (line, newline) = match bytes.iter().position(|&b| b == b'\n') {
                Some(i) => (&bytes[..i], true),
                None => (bytes, false),
            };
            let room = MAX_LINE - self.partial.len();
            let kept = line.len().min(room);
            self.partial.extend_from_slice(&line[..kept]);
            self.cut += line.len() - kept;
            if newline {
                self.emit();
                bytes = &bytes[line.len() + 1..];
            } else {
                bytes = &[];
            }
        }
    }

    fn emit(&mut self) {
        let raw = std::mem::take(&mut self.partial);
        let cut = std::mem::take(&mut self.cut);
        let text = String::from_utf8_lossy(&raw);
        let text = text.trim_end_matches('\r');
        if cut == 0 {
            self.events.output(self.stream, text);
        } else {
            let line = format!(
                "{text}… [runway: line cut at {MAX_LINE} of {} bytes]",
                raw.len() + cut
            );
            self.events.output(self.stream, &line);
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Failure;

    #[derive(Default)]
    struct Recorded(Mutex<Vec<String>>);

    impl InvocationEvents for Recorded {
        fn output(&self, _stream: Stream, line: &str) {
            self.0.lock().unwrap().push(line.to_string());
        }
        fn outbound_denied(&self, _url: &str) {}
        fn failed(&self, _failure: &Failure) {}
    }

    fn capture() -> (Arc<Recorded>, Capture) {
        let events = Arc::new(Recorded::default());
        (events.clone(), Capture::new(Stream::Stdout, events))
    }

    #[test]
    fn a_long_line_is_cut_once_with_a_marker() {
        let (events, capture) = capture();
        capture.write(b"short\r\n");
        // 100 KiB without a newline, written in pieces, then the newline.
        for _ in 0..100 {
            capture.write(&[b'x'; 1024]);
        }
        capture.write(b"\nnext\n");
        capture.write(b"bad \xff utf-8 and \0 nul");
        capture.finish();
        let lines = events.0.lock().unwrap().clone();
        assert_eq!(
            lines.len(),
            4,
            "{:?}",
            lines.iter().map(|l| l.len()).collect::<Vec<_>>()
        );
        assert_eq!(lines[0], "short");
        assert!(lines[1].starts_with(&"x".repeat(MAX_LINE)));
        assert!(
            lines[1].ends_with(&format!(
                "… [runway: line cut at {MAX_LINE} of 102400 bytes]"
            )),
            "{}",
            &lines[1][MAX_LINE..]
        );
        assert_eq!(lines[2], "next");
        assert_eq!(lines[3], "bad \u{FFFD} utf-8 and \0 nul");
    }

    #[test]
    fn a_cut_trailing_line_is_emitted_at_the_end() {
        let (events, capture) = capture();
        capture.write(&[b'y'; MAX_LINE + 10]);
        capture.finish();
        let lines = events.0.lock().unwrap().clone();
        assert_eq!(lines.len(), 1);
        assert!(lines[0].contains(&format!("cut at {MAX_LINE} of {} bytes", MAX_LINE + 10)));
    }
}
