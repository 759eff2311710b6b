//! Who is on the other end of a connection: `SO_PEERCRED` on Linux (uid
//! and pid), `getpeereid` on macOS and FreeBSD (uid only).

use std::io;
use std::os::fd::AsFd;

/// The connecting process's user, and its pid where the system says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    /// The effective uid.
    pub uid: u32,
    /// The pid (Linux only).
    pub pid: Option<i32>,
}

/// The credentials of the peer of `stream`.
#[cfg(target_os = "linux")]
pub fn peer(stream: &impl AsFd) -> io::Result<Peer> {
    let cred = rustix::net::sockopt::socket_peercred(stream)?;
    Ok(Peer {
        uid: cred.uid.as_raw(),
        pid: Some(cred.pid.as_raw_nonzero().get()),
    })
}

/// The credentials of the peer of `stream`.
#[cfg(not(target_os = "linux"))]
pub fn peer(stream: &impl AsFd) -> io::Result<Peer> {
    use std::os::fd::AsRawFd;
    let (mut uid, mut gid) = (0, 0);
    // SAFETY: the descriptor is a live socket borrowed for the call, and
    // getpeereid only writes the two integers it is given.
    let result = unsafe { libc::getpeereid(stream.as_fd().as_raw_fd(), &mut uid, &mut gid) };
    if result != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(Peer { uid, pid: None })
}
