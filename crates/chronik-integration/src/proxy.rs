//! A TCP proxy a test can cut, to put a network partition between processes on 127.0.0.1.
//!
//! [`Proxy::start`] listens on an ephemeral 127.0.0.1 port (bound once and kept, so no other
//! process can take it) and forwards every accepted connection to `target`, both directions,
//! with two plain threads per connection (a read into a buffer, then a write: bytes are never
//! reordered or dropped while the proxy is healed).
//!
//! [`Proxy::cut`] is a black hole, like a network partition as the peers see it:
//! - every open connection is closed at once (both its sides are shut down, so the peers see
//!   the connection end; a partition would instead leave them hanging until a timeout — tests
//!   that need hanging connections should rely on new connections, which do hang);
//! - new connections are accepted but nothing is read from them or forwarded, and the target
//!   is not connected to: a request sent on one waits until its sender times out.
//!
//! [`Proxy::heal`] closes the connections held while cut (they were never forwarded, and
//! letting their buffered bytes through late would replay stale requests) and forwards new
//! connections again. Dropping the proxy closes everything and stops its threads.
//!
//! A connection whose target refuses it (the target process is down) is closed right away, as
//! a direct connection would be refused.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the proxy waits for the target to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// A cuttable forwarding proxy to one target address; see the module docs.
pub struct Proxy {
    port: u16,
    target: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    stopping: AtomicBool,
}

#[derive(Default)]
struct State {
    cut: bool,
    /// Both streams (client side, target side) of every connection being forwarded, by id.
    forwarding: Vec<(u64, TcpStream, TcpStream)>,
    /// Connections accepted while cut, neither read nor forwarded.
    held: Vec<TcpStream>,
    next_id: u64,
    /// Connections forwarded since the start (for tests of the proxy itself).
    forwarded_total: u64,
}

impl State {
    fn close_forwarding(&mut self) {
        for (_, client, upstream) in self.forwarding.drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = upstream.shutdown(Shutdown::Both);
        }
    }
}

impl Proxy {
    /// Starts forwarding 127.0.0.1:[`Self::port`] to `target`. Panics if no port can be bound.
    pub fn start(target: SocketAddr) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("binding a proxy port");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            stopping: AtomicBool::new(false),
        });
        let acceptor = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name(format!("proxy-{port}"))
                .spawn(move || accept_loop(listener, target, shared))
                .expect("spawning the proxy thread")
        };
        Proxy {
            port,
            target,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// The port it listens on, on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:port`, for a client or a peer to connect to.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Where it forwards to.
    pub fn target(&self) -> SocketAddr {
        self.target
    }

    /// Closes every open connection and black-holes new ones until [`Self::heal`].
    pub fn cut(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.cut = true;
        state.close_forwarding();
    }

    /// Forwards new connections again; closes the ones held while cut.
    pub fn heal(&self) {
        let mut state = self.shared.state.lock().unwrap();
        state.cut = false;
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }

    pub fn is_cut(&self) -> bool {
        self.shared.state.lock().unwrap().cut
    }

    /// Connections being forwarded now.
    pub fn open_connections(&self) -> usize {
        self.shared.state.lock().unwrap().forwarding.len()
    }

    /// Connections held (accepted, not forwarded) because the proxy is cut.
    pub fn held_connections(&self) -> usize {
        self.shared.state.lock().unwrap().held.len()
    }

    /// Connections forwarded since the start.
    pub fn forwarded_total(&self) -> u64 {
        self.shared.state.lock().unwrap().forwarded_total
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.shared.stopping.store(true, Ordering::SeqCst);
        // Wake the acceptor blocked in accept().
        let _ = TcpStream::connect_timeout(&self.addr(), Duration::from_secs(1));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
        let mut state = self.shared.state.lock().unwrap();
        state.close_forwarding();
        for held in state.held.drain(..) {
            let _ = held.shutdown(Shutdown::Both);
        }
    }
}

fn accept_loop(listener: TcpListener, target: SocketAddr, shared: Arc<Shared>) {
    for client in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = client else {
            // Out of descriptors or a connection reset before accept: keep serving.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = client.set_nodelay(true);
        if hold_if_cut(&shared, &client) {
            continue;
        }
        let upstream = match TcpStream::connect_timeout(&target, CONNECT_TIMEOUT) {
            Ok(upstream) => upstream,
            Err(_) => {
                let _ = client.shutdown(Shutdown::Both);
                continue;
            }
        };
        let _ = upstream.set_nodelay(true);
        if let Err(e) = forward(&shared, client, upstream) {
            eprintln!("proxy to {target}: cannot forward a connection: {e}");
        }
    }
}

/// Keeps `client` unread when the proxy is cut; true if it did.
fn hold_if_cut(shared: &Shared, client: &TcpStream) -> bool {
    let mut state = shared.state.lock().unwrap();
    if !state.cut {
        return false;
    }
    match client.try_clone() {
        Ok(clone) => state.held.push(clone),
        Err(_) => {
            let _ = client.shutdown(Shutdown::Both);
        }
    }
    true
}

/// Registers the connection and starts its two pump threads, unless the proxy was cut while
/// the target was being connected to (then the client is held and the target side closed).
fn forward(shared: &Arc<Shared>, client: TcpStream, upstream: TcpStream) -> io::Result<()> {
    let id = {
        let mut state = shared.state.lock().unwrap();
        if state.cut {
            let _ = upstream.shutdown(Shutdown::Both);
            state.held.push(client);
            return Ok(());
        }
        let id = state.next_id;
        state.next_id += 1;
        state.forwarded_total += 1;
        state
            .forwarding
            .push((id, client.try_clone()?, upstream.try_clone()?));
        id
    };
    let done = Arc::new(AtomicBool::new(false));
    let pump_pair = [
        (client.try_clone()?, upstream.try_clone()?),
        (upstream, client),
    ];
    for (from, to) in pump_pair {
        let shared = shared.clone();
        let done = done.clone();
        std::thread::Builder::new()
            .name("proxy-pump".into())
            .spawn(move || {
                pump(from, to);
                // The second pump to finish unregisters the connection.
                if done.swap(true, Ordering::SeqCst) {
                    let mut state = shared.state.lock().unwrap();
                    state.forwarding.retain(|(i, _, _)| *i != id);
                }
            })?;
    }
    Ok(())
}

/// Copies `from` to `to` until `from` ends (then half-closes `to`) or either side fails (then
/// shuts both down, which also ends the other direction's pump).
fn pump(mut from: TcpStream, mut to: TcpStream) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => {
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => break,
        }
    }
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    /// An echo server on an ephemeral port; serves until the test process ends.
    fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut reader = stream.try_clone().unwrap();
                    let _ = io::copy(&mut reader, &mut stream);
                });
            }
        });
        addr
    }

    fn connect(proxy: &Proxy) -> TcpStream {
        let stream = TcpStream::connect(proxy.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        stream
    }

    /// Sends `msg` and reads the echo; `Err` if nothing (or not all of it) came back.
    fn round_trip(stream: &mut TcpStream, msg: &[u8]) -> io::Result<Vec<u8>> {
        stream.write_all(msg)?;
        let mut back = vec![0u8; msg.len()];
        stream.read_exact(&mut back)?;
        Ok(back)
    }

    /// True if the peer closed `stream` (EOF or reset) within 2 s, false if it stays open.
    fn ended(stream: &mut TcpStream) -> bool {
        stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => true,
            Ok(_) => false,
            Err(e) => !matches!(
                e.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
        }
    }

    fn eventually(what: &str, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !check() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn forwards_both_directions_across_connections() {
        let proxy = Proxy::start(echo_server());
        assert_ne!(proxy.port(), 0);
        let mut a = connect(&proxy);
        let mut b = connect(&proxy);
        assert_eq!(round_trip(&mut a, b"hello").unwrap(), b"hello");
        let big: Vec<u8> = (0..300_000u32).map(|i| i as u8).collect();
        let mut writer = b.try_clone().unwrap();
        let sent = big.clone();
        let sender = std::thread::spawn(move || writer.write_all(&sent).unwrap());
        b.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut back = vec![0u8; big.len()];
        b.read_exact(&mut back).unwrap();
        sender.join().unwrap();
        assert_eq!(back, big);
        assert_eq!(proxy.forwarded_total(), 2);
        assert_eq!(proxy.open_connections(), 2);
        drop(a);
        eventually("a closed connection to be unregistered", || {
            proxy.open_connections() == 1
        });
    }

    #[test]
    fn cut_closes_open_connections_and_black_holes_new_ones_until_healed() {
        let proxy = Proxy::start(echo_server());
        let mut open = connect(&proxy);
        assert_eq!(round_trip(&mut open, b"before").unwrap(), b"before");

        proxy.cut();
        assert!(proxy.is_cut());
        // The open connection ends: EOF or reset, not a hang.
        assert!(ended(&mut open), "an open connection survived the cut");
        // A new one connects (the kernel accepts it) but nothing comes back.
        let mut blackholed = connect(&proxy);
        let err = round_trip(&mut blackholed, b"lost").unwrap_err();
        assert!(
            matches!(
                err.kind(),
                io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
            ),
            "{err}"
        );
        eventually("the new connection to be held", || {
            proxy.held_connections() == 1
        });
        assert_eq!(proxy.forwarded_total(), 1);

        proxy.heal();
        assert!(!proxy.is_cut());
        assert_eq!(proxy.held_connections(), 0);
        // The held connection is closed rather than replayed.
        assert!(ended(&mut blackholed));
        let mut fresh = connect(&proxy);
        assert_eq!(round_trip(&mut fresh, b"after").unwrap(), b"after");
    }

    #[test]
    fn a_refused_target_closes_the_client_and_drop_stops_everything() {
        // A port nothing listens on (bound, then released).
        let dead = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = Proxy::start(dead);
        assert!(ended(&mut connect(&proxy)));
        assert_eq!(proxy.forwarded_total(), 0);

        let live = Proxy::start(echo_server());
        let addr = live.addr();
        let mut open = connect(&live);
        assert_eq!(round_trip(&mut open, b"x").unwrap(), b"x");
        drop(live);
        assert!(ended(&mut open));
        assert!(
            TcpStream::connect(addr).is_err(),
            "the port is still served"
        );
    }
}
