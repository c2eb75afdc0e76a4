//! TCP_NODELAY on PostgreSQL connections. sqlx 0.9.0 stopped setting it
//! (sqlx issue #4335; the fix, PR #4336, is not in a release yet), so a
//! statement written in more than one segment waits for the server's delayed
//! ACK before its last part leaves: about 40 ms on Linux. A 500-row import
//! batch paid that ten times (1,300 rows/s instead of several thousand).
//! Until sqlx sets it again, each new connection asks the server for the two
//! ports of the connection as it sees them, finds the socket among the
//! process's descriptors whose local and peer ports are those, and sets the
//! option (Linux only: it reads `/proc/self/fd`). Through a proxy that
//! rewrites ports (pgbouncer, a sidecar) nothing matches and nothing is set.
//! Remove this once sqlx sets it again.

use sea_orm::sqlx::{self, PgConnection};

/// The query whose answer [`set_for_ports`] takes: the connection's client
/// and server ports as the server sees them (NULL over a Unix socket, which
/// has no Nagle delay).
pub const PORTS_QUERY: &str = "SELECT inet_client_port(), inet_server_port()";

/// Sets TCP_NODELAY on the socket of `conn`. Never fails the connection: it
/// works without the option, only slower, so a failed lookup is logged.
pub async fn set(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    match sqlx::query_as::<_, (Option<i32>, Option<i32>)>(PORTS_QUERY)
        .fetch_one(conn)
        .await
    {
        Ok((client, server)) => set_for_ports(client, server),
        Err(error) => tracing::warn!(%error, "cannot read the connection's ports for TCP_NODELAY"),
    }
    Ok(())
}

/// Sets TCP_NODELAY on the connection the server reported with these
/// ports ([`PORTS_QUERY`]). Also for connections made outside the pool:
/// benchmarks' raw baselines, so they are measured as the service connects.
pub fn set_for_ports(client: Option<i32>, server: Option<i32>) {
    let port = |p: Option<i32>| p.and_then(|p| u16::try_from(p).ok());
    if let (Some(client), Some(server)) = (port(client), port(server))
        && sockets::set(client, server) == 0
    {
        tracing::debug!(
            client,
            server,
            "no socket of this process matches the connection's ports; TCP_NODELAY not set"
        );
    }
}

/// Whether this process's stream socket bound to local `port` has
/// TCP_NODELAY set (None: no such socket, or not Linux); for tests.
pub fn is_set_on_local_port(port: u16) -> Option<bool> {
    sockets::is_set(port)
}

#[cfg(target_os = "linux")]
mod sockets {
    use std::os::fd::{BorrowedFd, RawFd};

    use socket2::{SockRef, Type};

    /// Sets TCP_NODELAY on this process's stream sockets from local port
    /// `client` to peer port `server`; returns how many were set.
    pub(super) fn set(client: u16, server: u16) -> usize {
        socket_fds()
            .into_iter()
            .filter(|&fd| {
                with_socket(fd, |socket| {
                    stream_with_ports(&socket, client, Some(server))
                        && socket.set_tcp_nodelay(true).is_ok()
                })
            })
            .count()
    }

    pub(super) fn is_set(port: u16) -> Option<bool> {
        socket_fds().into_iter().find_map(|fd| {
            let mut nodelay = None;
            with_socket(fd, |socket| {
                if stream_with_ports(&socket, port, None) {
                    nodelay = socket.tcp_nodelay().ok();
                }
                nodelay.is_some()
            });
            nodelay
        })
    }

    /// This process's descriptors that are sockets (none where `/proc`
    /// cannot be read).
    fn socket_fds() -> Vec<RawFd> {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else {
            return Vec::new();
        };
        entries
            .flatten()
            .filter(|entry| {
                std::fs::read_link(entry.path())
                    .is_ok_and(|target| target.to_string_lossy().starts_with("socket:"))
            })
            .filter_map(|entry| entry.file_name().to_str()?.parse().ok())
            .collect()
    }

    /// Whether `socket` is a stream socket bound to local port `local` and,
    /// when given, connected to peer port `peer`.
    fn stream_with_ports(socket: &SockRef<'_>, local: u16, peer: Option<u16>) -> bool {
        let port = |address: std::io::Result<socket2::SockAddr>| {
            address.ok().and_then(|a| a.as_socket()).map(|a| a.port())
        };
        port(socket.local_addr()) == Some(local)
            && peer.is_none_or(|peer| port(socket.peer_addr()) == Some(peer))
            && socket.r#type().is_ok_and(|kind| kind == Type::STREAM)
    }

    /// Runs `f` on descriptor `fd` as a socket.
    #[allow(unsafe_code)]
    fn with_socket(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> bool) -> bool {
        // SAFETY: `borrow_raw` asks that `fd` stay open while borrowed, which
        // this cannot promise: another thread may close it after it was
        // listed. What is done with it is only getsockname, getpeername,
        // getsockopt and setsockopt: on a closed descriptor they fail with
        // EBADF; on a reused one they read or set an option of that socket,
        // which then also has to have both ports of this connection. Nothing
        // is read from or written to it, and it is not closed here.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        f(SockRef::from(&fd))
    }

    #[cfg(test)]
    mod tests {
        use std::net::{TcpListener, TcpStream};

        #[test]
        fn the_socket_with_both_ports_gets_nodelay_and_only_it() {
            let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
            let server = listener.local_addr().expect("its address").port();
            let client = TcpStream::connect(("127.0.0.1", server)).expect("connect");
            let (accepted, _) = listener.accept().expect("accept");
            let port = client.local_addr().expect("the client's address").port();
            assert!(!client.nodelay().expect("read"), "off by default");
            assert_eq!(super::is_set(port), Some(false));
            assert_eq!(
                super::set(port, server.wrapping_add(1)),
                0,
                "another peer port"
            );
            assert_eq!(super::set(port, server), 1, "the client's socket alone");
            assert!(client.nodelay().expect("read"));
            assert!(
                !accepted.nodelay().expect("read"),
                "the other end is left alone"
            );
            assert_eq!(super::is_set(port), Some(true));
        }
    }
}

#[cfg(not(target_os = "linux"))]
mod sockets {
    pub(super) fn set(_client: u16, _server: u16) -> usize {
        0
    }

    pub(super) fn is_set(_port: u16) -> Option<bool> {
        None
    }
}
