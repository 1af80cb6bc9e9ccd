//! A loopback TCP proxy that puts a server far away: every chunk is
//! delayed by a fixed one-way latency in each direction, and nothing the
//! client sends leaves before one round trip after it connected, for the
//! TCP handshake a real connection pays before it can send. (A client that
//! connects ahead and sends later has paid it by then, as on a real
//! network.)
//!
//! Threads end when their connection closes or the proxy is dropped; every
//! wait is bounded.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// How often blocked threads look at the stop flag.
const POLL: Duration = Duration::from_millis(20);

#[derive(Debug, Default)]
struct Counts {
    connections: AtomicUsize,
    open: AtomicUsize,
    most_open: AtomicUsize,
}

/// The proxy; dropping it stops it.
pub struct DelayProxy {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    counts: Arc<Counts>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: Option<JoinHandle<()>>,
}

impl DelayProxy {
    /// Forwards to `target`, `one_way` each way: a round trip of twice that.
    pub fn start(target: SocketAddr, one_way: Duration) -> Self {
        Self::start_at(SocketAddr::from(([127, 0, 0, 1], 0)), target, one_way)
    }

    /// The same, listening on `listen`: a proxy dropped and started again
    /// on its address is a network that went away and came back.
    pub fn start_at(listen: SocketAddr, target: SocketAddr, one_way: Duration) -> Self {
        let listener = TcpListener::bind(listen).expect("bind the proxy");
        listener.set_nonblocking(true).expect("nonblocking");
        let addr = listener.local_addr().expect("proxy address");
        let stop = Arc::new(AtomicBool::new(false));
        let counts = Arc::new(Counts::default());
        let threads = Arc::new(Mutex::new(Vec::new()));
        let accept = {
            let (stop, counts, threads) = (stop.clone(), counts.clone(), threads.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    match listener.accept() {
                        Ok((client, _)) => {
                            let handles = connect(client, target, one_way, &stop, &counts);
                            threads
                                .lock()
                                .unwrap_or_else(PoisonError::into_inner)
                                .extend(handles);
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => {
                            thread::sleep(Duration::from_millis(2));
                        }
                        Err(_) => thread::sleep(POLL),
                    }
                }
            })
        };
        Self {
            addr,
            stop,
            counts,
            threads,
            accept: Some(accept),
        }
    }

    /// Where the proxy listens.
    pub fn address(&self) -> SocketAddr {
        self.addr
    }

    /// The telemetry endpoint through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}/v1/insert", self.addr)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.counts.connections.load(Ordering::SeqCst)
    }

    /// The most connections that were open at once.
    pub fn most_open(&self) -> usize {
        self.counts.most_open.load(Ordering::SeqCst)
    }
}

impl Drop for DelayProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        let threads =
            std::mem::take(&mut *self.threads.lock().unwrap_or_else(PoisonError::into_inner));
        for thread in threads {
            let _ = thread.join();
        }
    }
}

/// One proxied connection: a reader and a delayed writer each way.
fn connect(
    client: TcpStream,
    target: SocketAddr,
    one_way: Duration,
    stop: &Arc<AtomicBool>,
    counts: &Arc<Counts>,
) -> Vec<JoinHandle<()>> {
    counts.connections.fetch_add(1, Ordering::SeqCst);
    let open = counts.open.fetch_add(1, Ordering::SeqCst) + 1;
    counts.most_open.fetch_max(open, Ordering::SeqCst);
    let _ = client.set_nonblocking(false);
    let Ok(server) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else {
        counts.open.fetch_sub(1, Ordering::SeqCst);
        return Vec::new();
    };
    // A network in between sends what it is given: without these, Nagle's
    // algorithm here would hold a message's last segment for the delayed
    // ACK of the one before (40 ms on Linux), a stall no router adds.
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (Ok(client2), Ok(server2)) = (client.try_clone(), server.try_clone()) else {
        counts.open.fetch_sub(1, Ordering::SeqCst);
        return Vec::new();
    };
    // The connection counts as closed once the client stops sending (a
    // server that never answers never closes its side).
    let handshake_done = Instant::now() + one_way * 2;
    let mut handles = pipe(client, server2, one_way, handshake_done, stop, Some(counts));
    handles.extend(pipe(server, client2, one_way, Instant::now(), stop, None));
    handles
}

/// Copies `from` to `to`, each chunk `delay` late, and none leaving before
/// `not_before`. `closes`: the counts to update when `from` ends.
fn pipe(
    from: TcpStream,
    to: TcpStream,
    delay: Duration,
    not_before: Instant,
    stop: &Arc<AtomicBool>,
    closes: Option<&Arc<Counts>>,
) -> Vec<JoinHandle<()>> {
    let (tx, rx) = mpsc::channel::<(Instant, Option<Vec<u8>>)>();
    let reader = {
        let stop = stop.clone();
        let closes = closes.cloned();
        let mut from = from;
        thread::spawn(move || {
            let _ = from.set_read_timeout(Some(POLL));
            let mut buf = vec![0_u8; 16 * 1024];
            while !stop.load(Ordering::SeqCst) {
                match from.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        let due = Instant::now().max(not_before) + delay;
                        if tx.send((due, Some(buf[..n].to_vec()))).is_err() {
                            return;
                        }
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => break,
                }
            }
            let _ = tx.send((Instant::now() + delay, None));
            if let Some(counts) = closes {
                counts.open.fetch_sub(1, Ordering::SeqCst);
            }
        })
    };
    let writer = {
        let stop = stop.clone();
        let mut to = to;
        thread::spawn(move || {
            // Chunks keep their order: each is due no earlier than the last.
            let mut last_due = Instant::now();
            loop {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let (due, chunk) = match rx.recv_timeout(POLL) {
                    Ok(item) => item,
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                };
                let due = due.max(last_due);
                last_due = due;
                while let Some(left) = due.checked_duration_since(Instant::now()) {
                    if left.is_zero() || stop.load(Ordering::SeqCst) {
                        break;
                    }
                    thread::sleep(left.min(POLL));
                }
                match chunk {
                    Some(bytes) => {
                        if to.write_all(&bytes).is_err() {
                            break;
                        }
                    }
                    None => break,
                }
            }
            let _ = to.shutdown(Shutdown::Write);
        })
    };
    vec![reader, writer]
}
