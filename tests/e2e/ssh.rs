//! Waiting on another host's sessions: a real `sshd` on 127.0.0.1 (keys
//! made in a temp dir; `scripts/test` installs OpenSSH) forwards a local
//! Unix socket to the daemon's (`ssh -L local.sock:remote.sock`), and
//! `verdict` talks to the daemon through it: a finished session, a live
//! one ended mid-wait, events, and the forward dropped mid-wait.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use verdict_e2e::{eventually, finish, output_within, Harness, Run};

/// An `sshd` of our own, for this user only, on a free port.
struct Sshd {
    dir: tempfile::TempDir,
    port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .status()
        .expect("ssh-keygen (scripts/test installs openssh-client)");
    assert!(status.success(), "ssh-keygen failed");
}

impl Sshd {
    fn start() -> Sshd {
        let dir = tempfile::Builder::new()
            .prefix("verdict-sshd")
            .tempdir()
            .expect("tempdir");
        keygen(&dir.path().join("host_key"));
        keygen(&dir.path().join("user_key"));
        std::fs::copy(
            dir.path().join("user_key.pub"),
            dir.path().join("authorized_keys"),
        )
        .expect("authorized_keys");
        // A free port: bound, then released for sshd.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let d = dir.path().display();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\n\
             AuthorizedKeysFile {d}/authorized_keys\nPidFile {d}/sshd.pid\nStrictModes no\n\
             PasswordAuthentication no\nKbdInteractiveAuthentication no\nUsePAM no\n\
             AllowStreamLocalForwarding yes\nPermitRootLogin prohibit-password\nLogLevel ERROR\n"
        );
        std::fs::write(dir.path().join("sshd_config"), config).expect("sshd_config");
        if rustix::process::geteuid().is_root() {
            // sshd's privilege-separation directory.
            std::fs::create_dir_all("/run/sshd").expect("/run/sshd");
        }
        let child = Command::new("/usr/sbin/sshd")
            .args(["-D", "-e", "-f"])
            .arg(dir.path().join("sshd_config"))
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start sshd (scripts/test installs openssh-server)");
        eventually("sshd to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(drop)
        });
        Sshd { dir, port, child }
    }

    /// `ssh -N -L local:remote` to this host, returned once `local` accepts.
    fn forward(&self, local: &Path, remote: &Path) -> Child {
        let d = self.dir.path();
        let child = Command::new("ssh")
            .args([
                "-N",
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
            ])
            .arg("-o")
            .arg(format!(
                "UserKnownHostsFile={}",
                d.join("known_hosts").display()
            ))
            .args(["-o", "ExitOnForwardFailure=yes", "-i"])
            .arg(d.join("user_key"))
            .args(["-p", &self.port.to_string(), "-L"])
            .arg(format!("{}:{}", local.display(), remote.display()))
            .arg("127.0.0.1")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start ssh");
        eventually("the forward to accept", || {
            std::os::unix::net::UnixStream::connect(local)
                .ok()
                .map(drop)
        });
        child
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stop(mut child: Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// The harness's daemon (the "remote" host's), a forward to it, and the
/// local socket.
fn forwarded(h: &Harness, sshd: &Sshd) -> (Child, PathBuf) {
    let local = h.tmp.path().join("forwarded.sock");
    (sshd.forward(&local, &h.socket), local)
}

/// `verdict <args> --socket <local> --no-spawn`: a forwarded socket is
/// someone else's daemon; never start one here.
fn verdict(h: &Harness, local: &Path, args: &[&str]) -> Command {
    let mut command = Command::new(verdict_e2e::bin("verdict"));
    command
        .args(args)
        .arg("--socket")
        .arg(local)
        .arg("--no-spawn")
        .stdin(Stdio::null());
    h.isolate(&mut command);
    command
}

/// `verdict wait ID` through the forward, running.
fn spawn_wait(h: &Harness, local: &Path, id: &str) -> Child {
    verdict(h, local, &["wait", id])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("verdict wait")
}

#[test]
fn waits_through_an_ssh_forward_and_exits_3_when_it_drops() {
    let sshd = Sshd::start();
    let h = Harness::start();
    let (ssh, local) = forwarded(&h, &sshd);

    // A finished session, by id: looked up on the daemon's host.
    let done = h.csa_session("proj", "01JSSHDONE");
    done.write("stdout.log", "remote output\n");
    done.write_result("success", 0);
    let run = Run::from(output_within(verdict(&h, &local, &["wait", "01JSSHDONE"])));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("remote output"), "{run:?}");

    // A live one, ended mid-wait; `verdict events` follows the same daemon.
    let mut events = verdict(&h, &local, &["events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("verdict events");
    let lines = {
        use std::io::BufRead;
        let stdout = events.stdout.take().expect("stdout");
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if send.send(line).is_err() {
                    break;
                }
            }
        });
        lines
    };
    eventually("the subscription", || {
        (h.status()["subscribers"] == 1).then_some(())
    });
    let mut live = h.csa_session("proj", "01JSSHLIVE");
    live.start_process();
    let mut waiting = spawn_wait(&h, &local, "01JSSHLIVE");
    h.wait_for_waiters(1);
    live.write_result("success", 0);
    live.end_process();
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("status=success"), "{run:?}");
    let mut seen = Vec::new();
    eventually("events to report the end", || {
        seen.extend(lines.try_iter());
        seen.iter()
            .any(|l: &String| l.starts_with("ended 01JSSHLIVE success"))
            .then_some(())
    });
    assert!(
        seen.iter().any(|l| l.starts_with("started 01JSSHLIVE")),
        "{seen:?}"
    );
    stop(events);

    // The forward drops mid-wait: exit 3, naming the socket, no hang.
    let mut still = h.csa_session("proj", "01JSSHDROP");
    still.start_process();
    let mut waiting = spawn_wait(&h, &local, "01JSSHDROP");
    h.wait_for_waiters(1);
    stop(ssh);
    let run = Run::from(finish(&mut waiting));
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stderr.contains(&local.display().to_string()),
        "the message names the socket: {run:?}"
    );
    h.wait_for_waiters(0);
    still.end_process();
}
