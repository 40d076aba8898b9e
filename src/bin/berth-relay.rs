//! berth-relay: the small program Berth copies into a workspace container
//! (as `/.berth-relay`, through the engine's archive API) and runs there
//! with `docker exec`, to reach the workspace's other ports without
//! publishing them and without ever using the container's IP address (see
//! ARCHITECTURE.md, "Reaching a workspace's ports"). `build.rs` compiles this
//! same file as a static executable, so it runs in any image of Berth's
//! architecture, whatever libraries (if any) the image has.
//!
//! - `berth-relay connect PORT`: connects to 127.0.0.1:PORT (else [::1]:PORT)
//!   inside the container, writes `+` once connected, then copies standard
//!   input to the socket and the socket to standard output until the socket
//!   closes. Exit 1 with a message on standard error (and nothing on
//!   standard output) when nothing listens there.
//! - `berth-relay ports`: prints `/proc/net/tcp`, a line `--`, then
//!   `/proc/net/tcp6`, for Berth to read the listening ports from.
//!
//! Only the standard library, so that it links statically.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpStream};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match (args.get(1).map(String::as_str), args.get(2)) {
        (Some("connect"), Some(port)) => match port.parse::<u16>() {
            Ok(p) if p > 0 => connect(p),
            _ => usage(),
        },
        (Some("ports"), None) => ports(),
        _ => usage(),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: berth-relay connect PORT | berth-relay ports");
    ExitCode::from(2)
}

fn connect(port: u16) -> ExitCode {
    let candidates = [
        SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    ];
    let Some(socket) = candidates.iter().find_map(|a| TcpStream::connect(a).ok()) else {
        eprintln!("berth-relay: nothing listens on port {port} in this container");
        return ExitCode::from(1);
    };
    let _ = socket.set_nodelay(true);
    let Ok(mut to_socket) = socket.try_clone() else {
        return ExitCode::from(1);
    };
    // Standard input → socket, on its own thread; at its end the socket's
    // writing half closes, so the server sees the request end.
    std::thread::spawn(move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if to_socket.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = to_socket.shutdown(Shutdown::Write);
    });
    // Socket → standard output, flushed per read (stdout is line-buffered).
    let mut from_socket = socket;
    let mut stdout = std::io::stdout().lock();
    if stdout.write_all(b"+").and_then(|_| stdout.flush()).is_err() {
        return ExitCode::from(1);
    }
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from_socket.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if stdout.write_all(&buf[..n]).is_err() || stdout.flush().is_err() {
                    break;
                }
            }
        }
    }
    ExitCode::SUCCESS
}

fn ports() -> ExitCode {
    let mut out = std::io::stdout().lock();
    for (i, path) in ["/proc/net/tcp", "/proc/net/tcp6"].iter().enumerate() {
        if i > 0 {
            let _ = out.write_all(b"--\n");
        }
        // A kernel without IPv6 has no tcp6: an empty section.
        if let Ok(text) = std::fs::read(path) {
            let _ = out.write_all(&text);
        }
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
