//! A userspace TCP proxy in front of seasmoke's sshd: adds a one-way delay in each direction, caps
//! the link's bandwidth in each direction (shared by every connection, as one link is), and
//! injects network faults (nothing listening, black hole, a different host behind the address).

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// Where new connections go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Route {
    /// To the real sshd.
    Normal,
    /// Nothing listens on the port: connection refused.
    Down,
    /// Accept, then never answer; existing connections stop moving data too.
    Tarpit,
    /// To the impostor sshd (same machine, another host key).
    Impostor,
}

struct State {
    route: Route,
    /// Generation of the accept thread that may run; bumped to stop it.
    generation: u64,
    accept: Option<JoinHandle<()>>,
    /// Sockets of live forwarded connections, by connection id (both ends).
    live: Vec<(u64, TcpStream)>,
    /// Connections parked by the tarpit.
    parked: Vec<TcpStream>,
    next_id: u64,
}

struct Shared {
    port: u16,
    delay_us: AtomicU64,
    upstream: AtomicU16,
    impostor: AtomicU16,
    blackhole: AtomicBool,
    /// Connections with an id below this stop moving data (a stalled link); 0 = none.
    stall_below: AtomicU64,
    accepted: AtomicU64,
    /// Bytes per second each direction may carry, all connections together; 0 = unlimited.
    bandwidth: AtomicU64,
    /// When each direction's link is next free to send (index [`UP`], [`DOWN`]).
    link_free: [Mutex<Instant>; 2],
    state: Mutex<State>,
}

/// Client to seasmoke.
const UP: usize = 0;
/// seasmoke to client.
const DOWN: usize = 1;

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The proxy. Dropping it closes the port and every connection.
pub struct Proxy {
    shared: Arc<Shared>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (and to `impostor` on
    /// [`Route::Impostor`]).
    pub fn start(upstream: u16, impostor: u16, delay: Duration) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared {
            port,
            delay_us: AtomicU64::new(delay.as_micros() as u64),
            upstream: AtomicU16::new(upstream),
            impostor: AtomicU16::new(impostor),
            blackhole: AtomicBool::new(false),
            stall_below: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            bandwidth: AtomicU64::new(0),
            link_free: [Mutex::new(Instant::now()), Mutex::new(Instant::now())],
            state: Mutex::new(State {
                route: Route::Normal,
                generation: 0,
                accept: None,
                live: Vec::new(),
                parked: Vec::new(),
                next_id: 0,
            }),
        });
        let handle = spawn_accept(shared.clone(), listener, 0);
        shared.lock().accept = Some(handle);
        Ok(Proxy { shared })
    }

    pub fn port(&self) -> u16 {
        self.shared.port
    }

    /// TCP connections accepted so far (all routes).
    pub fn accepted(&self) -> u64 {
        self.shared.accepted.load(Ordering::SeqCst)
    }

    pub fn set_delay(&self, d: Duration) {
        self.shared
            .delay_us
            .store(d.as_micros() as u64, Ordering::SeqCst);
    }

    pub fn delay(&self) -> Duration {
        Duration::from_micros(self.shared.delay_us.load(Ordering::SeqCst))
    }

    /// Caps the link at `bytes_per_sec` in each direction, all connections together (`None`:
    /// unlimited). Applies to data sent from now on, live connections included.
    pub fn set_bandwidth(&self, bytes_per_sec: Option<u64>) {
        self.shared
            .bandwidth
            .store(bytes_per_sec.unwrap_or(0), Ordering::SeqCst);
    }

    /// The cap set by [`Proxy::set_bandwidth`].
    pub fn bandwidth(&self) -> Option<u64> {
        match self.shared.bandwidth.load(Ordering::SeqCst) {
            0 => None,
            b => Some(b),
        }
    }

    pub fn set_upstream(&self, upstream: u16, impostor: u16) {
        self.shared.upstream.store(upstream, Ordering::SeqCst);
        self.shared.impostor.store(impostor, Ordering::SeqCst);
    }

    /// Switches the route. `Down` closes the listener and every connection; leaving `Down`
    /// binds the same port again. `Tarpit` also freezes live connections until it is lifted.
    pub fn set_route(&self, route: Route) -> std::io::Result<()> {
        let mut st = self.shared.lock();
        let old = st.route;
        st.route = route;
        self.shared
            .blackhole
            .store(route == Route::Tarpit, Ordering::SeqCst);
        if old == Route::Tarpit && route != Route::Tarpit {
            for s in st.parked.drain(..) {
                let _ = s.shutdown(Shutdown::Both);
            }
        }
        if route == Route::Down && old != Route::Down {
            st.generation += 1;
            let handle = st.accept.take();
            close_live(&mut st);
            drop(st);
            self.join_accept(handle);
        } else if old == Route::Down && route != Route::Down {
            // Re-bind the same port (std sets SO_REUSEADDR); retry briefly in case of a race.
            let mut last = None;
            for _ in 0..50 {
                match TcpListener::bind((Ipv4Addr::LOCALHOST, self.shared.port)) {
                    Ok(l) => {
                        let gen = st.generation;
                        st.accept = Some(spawn_accept(self.shared.clone(), l, gen));
                        return Ok(());
                    }
                    Err(e) => last = Some(e),
                }
                thread::sleep(Duration::from_millis(20));
            }
            st.route = Route::Down;
            return Err(last.unwrap_or_else(|| std::io::Error::other("bind failed")));
        }
        Ok(())
    }

    /// With `true`, every connection open now stops moving data in both directions while its
    /// sockets stay open (a link that silently drops packets); new connections work. `false`
    /// lets the stalled ones move again.
    pub fn stall_live(&self, on: bool) {
        let st = self.shared.lock();
        let below = if on { st.next_id } else { 0 };
        self.shared.stall_below.store(below, Ordering::SeqCst);
    }

    /// Closes every live forwarded connection (the listener stays).
    pub fn drop_connections(&self) {
        close_live(&mut self.shared.lock());
    }

    fn join_accept(&self, handle: Option<JoinHandle<()>>) {
        if let Some(h) = handle {
            // Wake the blocking accept() so the thread sees the new generation and exits.
            let _ = TcpStream::connect_timeout(
                &SocketAddr::from((Ipv4Addr::LOCALHOST, self.shared.port)),
                Duration::from_millis(500),
            );
            let _ = h.join();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.set_route(Route::Down);
        let mut st = self.shared.lock();
        for s in st.parked.drain(..) {
            let _ = s.shutdown(Shutdown::Both);
        }
        close_live(&mut st);
    }
}

fn close_live(st: &mut State) {
    for (_, s) in st.live.drain(..) {
        let _ = s.shutdown(Shutdown::Both);
    }
}

fn spawn_accept(shared: Arc<Shared>, listener: TcpListener, gen: u64) -> JoinHandle<()> {
    thread::spawn(move || {
        for conn in listener.incoming() {
            let route = {
                let st = shared.lock();
                if st.generation != gen {
                    break;
                }
                st.route
            };
            let Ok(client) = conn else { continue };
            shared.accepted.fetch_add(1, Ordering::SeqCst);
            match route {
                Route::Down => drop(client),
                Route::Tarpit => shared.lock().parked.push(client),
                Route::Normal | Route::Impostor => {
                    let shared = shared.clone();
                    thread::spawn(move || forward(shared, client, route));
                }
            }
        }
    })
}

enum Msg {
    Data(Instant, Vec<u8>),
    Eof,
    Reset,
}

fn forward(shared: Arc<Shared>, client: TcpStream, route: Route) {
    let port = if route == Route::Impostor {
        shared.impostor.load(Ordering::SeqCst)
    } else {
        shared.upstream.load(Ordering::SeqCst)
    };
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let Ok(upstream) = TcpStream::connect_timeout(&addr, Duration::from_secs(3)) else {
        // The builder is not there (killed): the connection just closes.
        let _ = client.shutdown(Shutdown::Both);
        return;
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let id = {
        let mut st = shared.lock();
        let id = st.next_id;
        st.next_id += 1;
        for s in [&client, &upstream] {
            if let Ok(c) = s.try_clone() {
                st.live.push((id, c));
            }
        }
        id
    };
    let pumps = [
        (UP, client.try_clone(), upstream.try_clone()),
        (DOWN, upstream.try_clone(), client.try_clone()),
    ];
    let mut handles = Vec::new();
    for (direction, from, to) in pumps {
        if let (Ok(from), Ok(to)) = (from, to) {
            let shared = shared.clone();
            handles.push(thread::spawn(move || {
                pump(&shared, id, direction, from, to)
            }));
        }
    }
    for h in handles {
        let _ = h.join();
    }
    shared.lock().live.retain(|(i, _)| *i != id);
}

/// Waits until the link in `direction` has carried `bytes` at the configured rate: the chunk
/// takes its turn after what every connection sent before it (one link, shared).
fn throttle(shared: &Shared, direction: usize, bytes: usize) {
    let rate = shared.bandwidth.load(Ordering::SeqCst);
    if rate == 0 {
        return;
    }
    let busy = Duration::from_secs_f64(bytes as f64 / rate as f64);
    let done = {
        let mut free = shared.link_free[direction]
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let start = (*free).max(Instant::now());
        *free = start + busy;
        *free
    };
    let now = Instant::now();
    if done > now {
        thread::sleep(done - now);
    }
}

fn pump(shared: &Shared, id: u64, direction: usize, from: TcpStream, mut to: TcpStream) {
    let (tx, rx) = mpsc::channel::<Msg>();
    let delay_us = &shared.delay_us;
    let reader = {
        let Ok(mut from2) = from.try_clone() else {
            return;
        };
        thread::spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match from2.read(&mut buf) {
                    Ok(0) => {
                        let _ = tx.send(Msg::Eof);
                        break;
                    }
                    Ok(n) => {
                        if tx
                            .send(Msg::Data(Instant::now(), buf[..n].to_vec()))
                            .is_err()
                        {
                            break;
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    Err(_) => {
                        let _ = tx.send(Msg::Reset);
                        break;
                    }
                }
            }
        })
    };
    for msg in rx {
        match msg {
            Msg::Data(read_at, data) => {
                let delay = Duration::from_micros(delay_us.load(Ordering::SeqCst));
                let due = read_at + delay;
                let now = Instant::now();
                if due > now {
                    thread::sleep(due - now);
                }
                while shared.blackhole.load(Ordering::SeqCst)
                    || id < shared.stall_below.load(Ordering::SeqCst)
                {
                    thread::sleep(Duration::from_millis(20));
                }
                throttle(shared, direction, data.len());
                if to.write_all(&data).is_err() {
                    let _ = to.shutdown(Shutdown::Both);
                    let _ = from.shutdown(Shutdown::Both);
                    break;
                }
            }
            Msg::Eof => {
                let _ = to.shutdown(Shutdown::Write);
                break;
            }
            Msg::Reset => {
                let _ = to.shutdown(Shutdown::Both);
                break;
            }
        }
    }
    let _ = reader.join();
}
