//! `syslog`: RFC 5424 messages carrying the alert as CEF, over TCP with octet-counting framing
//! (RFC 6587) or TLS (RFC 5425) with a CA file. One connection is kept open and opened again
//! after any failure. TCP acknowledges nothing: a message written just before the server
//! closes may be lost, so a connection the server has closed is noticed before writing.

use std::path::PathBuf;
use std::sync::Arc;

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName};
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore};

use super::record::hostname;
use super::{BoxFuture, Deliver, Record, Results, SendError, all, cef};
use super::common::{AlertFormat, DeliveryPolicy};
use super::kind::{Kind, Options, Shared, deliver};
use crate::rule::Severity;

/// `[[sink]] kind = "syslog"`: its keys, validated.
#[derive(Clone, Debug, PartialEq)]
pub struct SyslogConfig {
    /// `host:port`.
    pub address: String,
    pub tls: bool,
    pub ca_file: Option<PathBuf>,
    /// The name the server's certificate must carry (default: the host of `address`).
    pub server_name: Option<String>,
    /// RFC 5424 facility number (`auth` = 4 by default).
    pub facility: u8,
    pub app_name: String,
    pub hostname: Option<String>,
}

/// RFC 5424 facility names and numbers.
const FACILITIES: [(&str, u8); 12] = [
    ("kern", 0),
    ("user", 1),
    ("daemon", 3),
    ("auth", 4),
    ("authpriv", 10),
    ("local0", 16),
    ("local1", 17),
    ("local2", 18),
    ("local3", 19),
    ("local4", 20),
    ("local5", 21),
    ("local6", 22),
];

/// `host:port` or `[v6]:port`.
pub fn split_host_port(address: &str) -> Option<(String, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let port = port.parse().ok()?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| (host.to_string(), port))
}

impl Kind for SyslogConfig {
    const SHARED: Shared = Shared::RECEIVER;

    fn read(o: &mut Options<'_>) -> Option<Self> {
        let address = o.required("address");
        if let Some(a) = &address
            && split_host_port(a).is_none()
        {
            o.fail(format!(
                "address `{a}` must be host:port, like siem.example.com:6514"
            ));
        }
        let tls = match o.str("protocol").as_deref() {
            None | Some("tcp") => false,
            Some("tls") => true,
            Some(other) => {
                o.fail(format!("protocol `{other}`: use tcp or tls"));
                false
            }
        };
        let ca_file = o.ca_file();
        if ca_file.is_some() && !tls {
            o.fail("ca_file needs protocol = \"tls\"".into());
        }
        let server_name = o.str("server_name");
        let facility = match o.str("facility") {
            None => 4,
            Some(f) => match FACILITIES.iter().find(|(n, _)| *n == f) {
                Some((_, v)) => *v,
                None => {
                    let names: Vec<&str> = FACILITIES.iter().map(|(n, _)| *n).collect();
                    o.fail(format!("facility `{f}`: use one of {}", names.join(", ")));
                    4
                }
            },
        };
        let app_name = o.str("app_name").unwrap_or_else(|| "authwatch".into());
        let hostname = o.str("hostname");
        Some(SyslogConfig {
            address: address?,
            tls,
            ca_file,
            server_name,
            facility,
            app_name,
            hostname,
        })
    }

    fn build(
        &self,
        policy: &DeliveryPolicy,
        include_evidence: bool,
        _format: Option<AlertFormat>,
    ) -> Result<Arc<dyn Deliver>, String> {
        Syslog::new(self.clone(), policy, include_evidence).map(deliver)
    }
}


/// Private enterprise number for the structured data id: 32473 is the one RFC 5612 reserves
/// for documentation; receivers only need it to be stable.
const SD_ID: &str = "authwatch@32473";

enum Conn {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl Conn {
    /// Whether the server has closed (or reset) the connection. It never sends data, so a
    /// read that is ready at once means end of stream or an error; a TLS 1.3 session ticket
    /// is consumed by the TLS layer on the way and the read stays pending.
    async fn closed(&mut self) -> bool {
        let mut buf = [0u8; 512];
        // A zero timeout polls the read once: ready now, or pending (alive).
        let read = match self {
            Conn::Tcp(s) => tokio::time::timeout(Duration::ZERO, s.read(&mut buf)).await,
            Conn::Tls(s) => tokio::time::timeout(Duration::ZERO, s.read(&mut buf)).await,
        };
        matches!(read, Ok(Ok(0)) | Ok(Err(_)))
    }

    async fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Tcp(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(buf).await?;
                s.flush().await
            }
        }
    }
}

pub struct Syslog {
    config: SyslogConfig,
    host: String,
    port: u16,
    hostname: String,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    timeout: Duration,
    include_evidence: bool,
    conn: Mutex<Option<Conn>>,
}

impl Syslog {
    pub fn new(
        config: SyslogConfig,
        policy: &DeliveryPolicy,
        include_evidence: bool,
    ) -> Result<Syslog, String> {
        let (host, port) = split_host_port(&config.address)
            .ok_or_else(|| format!("address `{}` must be host:port", config.address))?;
        let tls = if config.tls {
            let mut roots = RootCertStore::empty();
            match &config.ca_file {
                Some(path) => {
                    let certs = CertificateDer::pem_file_iter(path)
                        .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    for cert in certs {
                        let cert = cert.map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                        roots
                            .add(cert)
                            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    }
                }
                None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            }
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let client = ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| format!("TLS setup: {e}"))?
                .with_root_certificates(roots)
                .with_no_client_auth();
            let name = config.server_name.clone().unwrap_or_else(|| host.clone());
            let name = ServerName::try_from(name.clone())
                .map_err(|_| format!("`{name}` is not a valid TLS server name"))?;
            Some((TlsConnector::from(Arc::new(client)), name))
        } else {
            None
        };
        Ok(Syslog {
            hostname: config.hostname.clone().unwrap_or_else(hostname),
            config,
            host,
            port,
            tls,
            timeout: policy.timeout,
            include_evidence,
            conn: Mutex::new(None),
        })
    }

    /// One RFC 5424 message: `<PRI>1 TIMESTAMP HOST APP - MSGID [SD] CEF...`.
    pub fn message(&self, a: &Record) -> String {
        let pri = u16::from(self.config.facility) * 8 + u16::from(syslog_severity(a.severity()));
        let timestamp = a.detected_at.as_deref().unwrap_or(&a.ts);
        format!(
            "<{pri}>1 {timestamp} {} {} - {} [{SD_ID} id=\"{}\" rule=\"{}\" severity=\"{}\"] {}",
            header_field(&self.hostname, 255),
            header_field(&self.config.app_name, 48),
            header_field(&a.rule, 32),
            sd_value(&a.id),
            sd_value(&a.rule),
            sd_value(&a.severity),
            cef::line(a, self.include_evidence)
        )
    }

    async fn connect(&self) -> Result<Conn, String> {
        let tcp = TcpStream::connect((self.host.as_str(), self.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", self.config.address))?;
        let _ = tcp.set_nodelay(true);
        match &self.tls {
            None => Ok(Conn::Tcp(tcp)),
            Some((connector, name)) => connector
                .connect(name.clone(), tcp)
                .await
                .map(|s| Conn::Tls(Box::new(s)))
                .map_err(|e| format!("TLS handshake with {} failed: {e}", self.config.address)),
        }
    }

    async fn send(&self, frames: &[u8]) -> Result<(), String> {
        let mut slot = self.conn.lock().await;
        if let Some(conn) = slot.as_mut()
            && conn.closed().await
        {
            *slot = None;
        }
        if slot.is_none() {
            *slot = Some(self.connect().await?);
        }
        let conn = slot.as_mut().expect("connected above");
        if let Err(e) = conn.write_all(frames).await {
            *slot = None;
            return Err(format!("write to {} failed: {e}", self.config.address));
        }
        Ok(())
    }
}

/// RFC 5424 severities: critical 2, error 3, warning 4, notice 5, informational 6.
fn syslog_severity(s: Severity) -> u8 {
    match s {
        Severity::Critical => 2,
        Severity::High => 3,
        Severity::Medium => 4,
        Severity::Low => 5,
        Severity::Info => 6,
    }
}

/// Header fields are printable US-ASCII without spaces, bounded in length; `-` when empty.
fn header_field(s: &str, max: usize) -> String {
    let v: String = s
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if v.is_empty() { "-".into() } else { v }
}

/// SD-PARAM values escape `"`, `\` and `]`.
fn sd_value(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

impl Deliver for Syslog {
    fn deliver<'a>(&'a self, alerts: &'a [Arc<Record>]) -> BoxFuture<'a, Results> {
        Box::pin(async move {
            // Octet counting: "<length> <message>", so messages may hold any byte.
            let mut frames = Vec::new();
            for a in alerts {
                let m = self.message(a);
                frames.extend_from_slice(format!("{} ", m.len()).as_bytes());
                frames.extend_from_slice(m.as_bytes());
            }
            let sent = tokio::time::timeout(self.timeout, self.send(&frames)).await;
            let result = match sent {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(SendError::unavailable(e)),
                Err(_) => {
                    *self.conn.lock().await = None;
                    Err(SendError::unavailable(format!(
                        "{} did not take the message within {:?}",
                        self.config.address, self.timeout
                    )))
                }
            };
            all(alerts.len(), result)
        })
    }

    fn max_batch(&self) -> usize {
        // Framing makes a batch one write; alerts are independent messages all the same.
        16
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::record::tests::sample;

    #[test]
    fn messages_are_rfc_5424_with_structured_data_and_cef() {
        let s = Syslog::new(
            SyslogConfig {
                address: "127.0.0.1:6514".into(),
                tls: false,
                ca_file: None,
                server_name: None,
                facility: 4,
                app_name: "authwatch".into(),
                hostname: Some("sensor-1".into()),
            },
            &DeliveryPolicy::default(),
            false,
        )
        .unwrap();
        let m = s.message(&sample());
        assert!(
            m.starts_with("<35>1 2026-03-02T07:43:03.120Z sensor-1 authwatch - brute-force-user [authwatch@32473 id=\"0123456789abcdef0123456789abcdef\""),
            "{m}"
        );
        assert!(m.contains("] CEF:0|authwatch|"), "{m}");
    }
}
