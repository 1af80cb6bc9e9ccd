//! A loopback proxy in front of the collector that, while it cuts, forwards
//! each request, waits for the collector's answer, and then closes the
//! client's connection without passing the answer on: the batch is stored,
//! and the sender cannot know it. Afterwards it relays answers as they are.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

/// What the proxy did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exchange {
    /// The answer was withheld and the connection closed.
    pub cut: bool,
    /// The collector's answer body.
    pub answer: String,
}

/// The proxy; its accept loop ends when it is dropped.
pub struct CutProxy {
    pub address: SocketAddr,
    cutting: Arc<AtomicBool>,
    exchanges: Arc<Mutex<Vec<Exchange>>>,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
}

impl CutProxy {
    /// A proxy to `upstream` that cuts until [`relay`](Self::relay).
    pub fn start(upstream: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener.set_nonblocking(true).expect("non-blocking accept");
        let address = listener.local_addr().expect("proxy address");
        let cutting = Arc::new(AtomicBool::new(true));
        let exchanges = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let accept = {
            let (cutting, exchanges, stop) = (cutting.clone(), exchanges.clone(), stop.clone());
            thread::spawn(move || {
                // Bounded: the loop ends with the proxy, polling every 5 ms.
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let (cutting, exchanges) = (cutting.clone(), exchanges.clone());
                            thread::spawn(move || {
                                let _ = serve(client, upstream, &cutting, &exchanges);
                            });
                        }
                        Err(_) => thread::sleep(Duration::from_millis(5)),
                    }
                }
            })
        };
        Self {
            address,
            cutting,
            exchanges,
            stop,
            accept: Some(accept),
        }
    }

    /// The endpoint to give the sender.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/insert", self.address)
    }

    /// From now on, answers are passed on.
    pub fn relay(&self) {
        self.cutting.store(false, Ordering::SeqCst);
    }

    /// Every request so far, in order.
    pub fn exchanges(&self) -> Vec<Exchange> {
        self.exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// The requests of one client connection, until it closes or is cut.
fn serve(
    client: TcpStream,
    upstream: SocketAddr,
    cutting: &AtomicBool,
    exchanges: &Mutex<Vec<Exchange>>,
) -> io::Result<()> {
    client.set_nonblocking(false)?;
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut from_client = BufReader::new(client.try_clone()?);
    let mut to_client = client;
    let collector = TcpStream::connect(upstream)?;
    collector.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut from_collector = BufReader::new(collector.try_clone()?);
    let mut to_collector = collector;
    // Bounded by the timeouts: each turn reads one request or ends.
    loop {
        let Some(request) = message(&mut from_client)? else {
            return Ok(());
        };
        to_collector.write_all(&request)?;
        let Some(answer) = message(&mut from_collector)? else {
            return Ok(());
        };
        let cut = cutting.load(Ordering::SeqCst);
        let body = answer
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .map_or(&answer[..], |at| &answer[at + 4..]);
        exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(Exchange {
                cut,
                answer: String::from_utf8_lossy(body).into_owned(),
            });
        if cut {
            return Ok(()); // both connections close here
        }
        to_client.write_all(&answer)?;
    }
}

/// One HTTP/1.1 message with a `Content-Length` body, head included;
/// `None` at a clean end of the stream.
fn message(reader: &mut impl BufRead) -> io::Result<Option<Vec<u8>>> {
    let mut head = Vec::new();
    let mut length = 0_usize;
    for _ in 0..100 {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
        head.extend_from_slice(line.as_bytes());
        if line == "\r\n" {
            let mut body = vec![0; length];
            reader.read_exact(&mut body)?;
            head.extend_from_slice(&body);
            return Ok(Some(head));
        }
    }
    Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"))
}
