//! Where alerts go. Each sink kind has its own module; the router applies each sink's routing.

mod file;
mod stdout;

pub use file::FileSink;
pub use stdout::StdoutSink;

use std::io;

use crate::config::{Routing, SinkConfig, SinkKind};
use crate::engine::Alert;

/// A destination for alerts.
pub trait AlertSink {
    fn deliver(&mut self, alert: &Alert) -> io::Result<()>;
    /// Pushes buffered alerts out (called after each batch and at shutdown).
    fn flush(&mut self) -> io::Result<()>;
}

/// Every configured sink with its routing.
pub struct Router {
    sinks: Vec<(Routing, Box<dyn AlertSink>)>,
}

impl Router {
    pub fn new(sinks: Vec<(Routing, Box<dyn AlertSink>)>) -> Router {
        Router { sinks }
    }

    /// Opens the sinks a configuration names.
    pub fn from_config(configs: &[SinkConfig]) -> io::Result<Router> {
        let mut sinks: Vec<(Routing, Box<dyn AlertSink>)> = Vec::new();
        for c in configs {
            let sink: Box<dyn AlertSink> = match &c.kind {
                SinkKind::Stdout => Box::new(StdoutSink::new()),
                SinkKind::File { path } => Box::new(FileSink::open(path)?),
            };
            sinks.push((c.routing.clone(), sink));
        }
        Ok(Router::new(sinks))
    }

    pub fn deliver(&mut self, alert: &Alert) -> io::Result<()> {
        for (routing, sink) in &mut self.sinks {
            if routing.accepts(&alert.rule, alert.severity, &alert.tags) {
                sink.deliver(alert)?;
            }
        }
        Ok(())
    }

    pub fn flush(&mut self) -> io::Result<()> {
        self.sinks.iter_mut().try_for_each(|(_, s)| s.flush())
    }
}
