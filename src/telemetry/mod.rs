//! # Telemetry
//!
//! Logging with personal data masked out of every line, and correlation ids. This module owns
//! the one place where log output is written: anything that reaches the terminal or a log
//! collector has passed through [`mask::mask_pii`]. It must never log request bodies.

pub mod correlation;
pub mod mask;
pub mod metrics;

use std::io::{self, IsTerminal, Write};

use tracing_subscriber::{
    EnvFilter, fmt::MakeWriter, layer::SubscriberExt, util::SubscriberInitExt,
};

use crate::config::{LogFormat, Settings};

/// A writer factory that masks personal data out of each formatted log line.
#[derive(Clone)]
pub struct MaskingMakeWriter<M> {
    inner: M,
}

impl<M> MaskingMakeWriter<M> {
    pub fn new(inner: M) -> Self {
        Self { inner }
    }
}

/// Buffers one event, masks it, and writes it through in one piece when dropped.
pub struct MaskingWriter<W: Write> {
    buf: Vec<u8>,
    inner: W,
}

impl<W: Write> Write for MaskingWriter<W> {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let text = String::from_utf8_lossy(&self.buf).into_owned();
        let masked = mask::mask_pii(&text);
        self.buf.clear();
        self.inner.write_all(masked.as_bytes())?;
        self.inner.flush()
    }
}

impl<W: Write> Drop for MaskingWriter<W> {
    fn drop(&mut self) {
        let _ = self.flush();
    }
}

impl<'a, M> MakeWriter<'a> for MaskingMakeWriter<M>
where
    M: MakeWriter<'a>,
{
    type Writer = MaskingWriter<M::Writer>;
    fn make_writer(&'a self) -> Self::Writer {
        MaskingWriter {
            buf: Vec::with_capacity(256),
            inner: self.inner.make_writer(),
        }
    }
}

/// Installs the global subscriber: JSON or human-readable lines on stderr, masked.
/// Safe to call more than once (later calls are no-ops).
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&settings.log_level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !io::stderr().is_terminal(),
    };
    let writer = MaskingMakeWriter::new(io::stderr);
    let registry = tracing_subscriber::registry().with(filter);
    let result = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(writer),
            )
            .try_init()
    } else {
        registry
            .with(tracing_subscriber::fmt::layer().with_writer(writer))
            .try_init()
    };
    let _ = result;
}
