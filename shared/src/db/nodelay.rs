//! TCP_NODELAY on PostgreSQL connections. sqlx 0.9.0 stopped setting it
//! (sqlx issue #4335; the fix, PR #4336, is not in a release yet), so a
//! statement written in more than one segment waits for the server's delayed
//! ACK before its last part leaves: about 40 ms on Linux. A 500-row import
//! batch paid that ten times (1,300 rows/s instead of several thousand).
//! Until sqlx sets it again, each new connection asks the server which port
//! it connected from, finds its own socket bound to that port among the
//! process's descriptors, and sets the option. Remove this once sqlx does.

use std::os::fd::{BorrowedFd, RawFd};

use sea_orm::sqlx::{self, PgConnection};
use socket2::{SockRef, Type};

/// Sets TCP_NODELAY on the socket of `conn` (nothing for a Unix socket, or
/// where `/proc` cannot be read: the connection then works as sqlx made it).
pub async fn set(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    let port = sqlx::query_scalar("SELECT inet_client_port()")
        .fetch_one(conn)
        .await?;
    set_for_client_port(port);
    Ok(())
}

/// Sets TCP_NODELAY on the connection whose client port the server reported
/// as `port` (`SELECT inet_client_port()`; NULL over a Unix socket, which has
/// no Nagle delay). For connections made outside the pool: benchmarks' raw
/// baselines, so they are measured as the service connects.
pub fn set_for_client_port(port: Option<i32>) {
    if let Some(port) = port.and_then(|p| u16::try_from(p).ok())
        && set_on_local_port(port) == 0
    {
        tracing::debug!(
            port,
            "no socket of this process is bound to the connection's port"
        );
    }
}

/// Sets TCP_NODELAY on this process's stream sockets bound to local `port`
/// (the connection just made: a port in use belongs to one connection);
/// returns how many were set.
fn set_on_local_port(port: u16) -> usize {
    socket_fds()
        .into_iter()
        .filter(|&fd| {
            with_socket(fd, |socket| {
                bound_stream(&socket, port) && socket.set_tcp_nodelay(true).is_ok()
            })
        })
        .count()
}

/// This process's descriptors that are sockets (none where `/proc` cannot be read).
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

/// Whether `socket` is a stream socket bound to local `port`.
fn bound_stream(socket: &SockRef<'_>, port: u16) -> bool {
    let bound = socket
        .local_addr()
        .ok()
        .and_then(|address| address.as_socket())
        .is_some_and(|address| address.port() == port);
    bound && socket.r#type().is_ok_and(|kind| kind == Type::STREAM)
}

/// Whether this process's stream socket bound to local `port` has
/// TCP_NODELAY set (None: no such socket); for tests of the above.
pub fn is_set_on_local_port(port: u16) -> Option<bool> {
    socket_fds().into_iter().find_map(|fd| {
        let mut nodelay = None;
        with_socket(fd, |socket| {
            if bound_stream(&socket, port) {
                nodelay = socket.tcp_nodelay().ok();
            }
            nodelay.is_some()
        });
        nodelay
    })
}

/// Runs `f` on descriptor `fd` as a socket.
#[allow(unsafe_code)]
fn with_socket(fd: RawFd, f: impl FnOnce(SockRef<'_>) -> bool) -> bool {
    // SAFETY: the descriptor is only borrowed for this call, for
    // getsockname/getsockopt/setsockopt, which fail harmlessly (EBADF,
    // ENOTSOCK) if it was closed or reused since it was listed; nothing is
    // read from or written to it and it is not closed here.
    let fd = unsafe { BorrowedFd::borrow_raw(fd) };
    f(SockRef::from(&fd))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream};

    #[test]
    fn the_socket_bound_to_the_port_gets_nodelay_and_only_it() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a listener");
        let client =
            TcpStream::connect(listener.local_addr().expect("its address")).expect("connect");
        let (accepted, _) = listener.accept().expect("accept");
        let port = client.local_addr().expect("the client's address").port();
        assert!(!client.nodelay().expect("read"), "off by default");
        assert_eq!(super::is_set_on_local_port(port), Some(false));
        assert_eq!(
            super::set_on_local_port(port),
            1,
            "the client's socket alone"
        );
        assert!(client.nodelay().expect("read"));
        assert!(
            !accepted.nodelay().expect("read"),
            "the other end is left alone"
        );
        assert_eq!(super::is_set_on_local_port(port), Some(true));
    }
}
