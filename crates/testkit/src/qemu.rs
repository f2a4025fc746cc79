//! QEMU as the tests drive it: a process whose serial console is collected and which is killed
//! and reaped when dropped, waiting for a console line, and the test channel (a shell on a
//! virtio-serial port of the test-only base overlay). The Secure Boot command itself is
//! [`crate::qemu_secure_boot`].

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A QEMU process that is killed and reaped when dropped: no QEMU is left behind.
#[derive(Debug)]
pub struct Qemu {
    pub child: Child,
    /// Everything it wrote to stdout (the serial console) so far.
    pub out: Arc<Mutex<Vec<u8>>>,
    /// Its stdin: the serial console's keyboard (with -nographic).
    keys: Mutex<Option<std::process::ChildStdin>>,
}

impl Qemu {
    /// Start `cmd`: stdin piped (the serial console's keyboard, [`Qemu::type_bytes`]; a stdin
    /// set on `cmd` is replaced), stdout collected in `out` by a thread of its own.
    pub fn spawn(cmd: &mut std::process::Command) -> Qemu {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("qemu-system-x86_64 (package qemu-system-x86) must be installed");
        let keys = Mutex::new(child.stdin.take());
        let mut q = Qemu {
            child,
            out: Arc::new(Mutex::new(Vec::new())),
            keys,
        };
        let mut stdout = q.child.stdout.take().unwrap();
        let sink = Arc::clone(&q.out);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stdout.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
            }
        });
        q
    }

    /// The console so far, as text.
    pub fn console(&self) -> String {
        String::from_utf8_lossy(&self.out.lock().unwrap()).into_owned()
    }

    /// The console so far as a person reads it: terminal escape sequences (cursor moves,
    /// colours) and box-drawing characters become spaces.
    pub fn screen_text(&self) -> String {
        plain_text(&self.console())
    }

    /// Wait until QEMU exits (the PC restarts with -no-reboot, or powers off), at most `secs`;
    /// then the whole console (the reader thread is given a moment for the last output).
    pub fn wait_exit(&mut self, secs: u64) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            match self.child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(200))
                }
                Ok(None) => {
                    return Err(format!(
                        "QEMU still running after {secs} s:\n{}",
                        self.screen_text()
                    ))
                }
                Err(e) => return Err(format!("waiting for QEMU: {e}")),
            }
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(self.console())
    }

    /// Type `bytes` on the serial console.
    pub fn type_bytes(&self, bytes: &[u8]) -> std::io::Result<()> {
        let mut keys = self.keys.lock().unwrap();
        let stdin = keys
            .as_mut()
            .ok_or_else(|| std::io::Error::other("QEMU's stdin is closed"))?;
        stdin.write_all(bytes)?;
        stdin.flush()
    }
}

/// `console` without terminal escape sequences and box drawing (each becomes one space).
pub fn plain_text(console: &str) -> String {
    let mut out = String::with_capacity(console.len());
    let mut chars = console.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte.
            if chars.peek() == Some(&'[') {
                chars.next();
                while let Some(&n) = chars.peek() {
                    chars.next();
                    if n.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            out.push(' ');
        } else if ('\u{2500}'..='\u{259f}').contains(&c) || c == '\u{fffd}' {
            out.push(' ');
        } else {
            out.push(c);
        }
    }
    out
}

impl Drop for Qemu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test channel: a shell on the virtio-serial port homestick.test (test base only).
#[derive(Debug)]
pub struct Channel {
    pub s: UnixStream,
    pub buf: Vec<u8>,
}

impl Channel {
    pub fn connect(path: &Path) -> Channel {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match UnixStream::connect(path) {
                Ok(s) => {
                    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
                    let mut c = Channel { s, buf: Vec::new() };
                    c.sync();
                    return c;
                }
                Err(e) => {
                    assert!(Instant::now() < deadline, "{}: {e}", path.display());
                    std::thread::sleep(Duration::from_millis(200));
                }
            }
        }
    }

    /// Wait until the guest's shell answers. The shell on the port restarts every second while
    /// no host is connected (it reads EOF then), so a first line written just then can go
    /// unread; a probe is sent again every 2 s until one is answered (at most 120 s).
    fn sync(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for n in 0u32.. {
            let tag = format!("__HS_READY_{n}__");
            self.s
                .write_all(format!("echo {tag}\n").as_bytes())
                .unwrap();
            let resend = Instant::now() + Duration::from_secs(2);
            while Instant::now() < resend {
                self.fill();
                let text = String::from_utf8_lossy(&self.buf).into_owned();
                if text.contains(&format!("{tag}\n")) {
                    // The shell answers; answers to other probes may still be on their way:
                    // one more line, answered after all of them, ends the output they share.
                    self.buf.clear();
                    self.run(":");
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "test channel: the guest's shell does not answer"
            );
        }
    }

    /// Read what the guest sent (waits up to the socket's 1 s read timeout).
    fn fill(&mut self) {
        let mut chunk = [0u8; 4096];
        match self.s.read(&mut chunk) {
            Ok(0) => std::thread::sleep(Duration::from_millis(200)),
            Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut
                    || e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("test channel: {e}"),
        }
    }

    /// Run `cmd` in the booted system; its output (stdout and stderr) and exit status.
    pub fn run(&mut self, cmd: &str) -> (String, i32) {
        let tag = format!("__HS{}__", self.buf.len() ^ 0x5a5a);
        let line = format!("{cmd}\necho \"{tag}$?\"\n");
        self.s.write_all(line.as_bytes()).unwrap();
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let text = String::from_utf8_lossy(&self.buf).into_owned();
            if let Some(i) = text.find(&tag) {
                let rest = &text[i + tag.len()..];
                if let Some(nl) = rest.find('\n') {
                    let code = rest[..nl].trim().parse().unwrap_or(-1);
                    let out = text[..i].to_string();
                    self.buf = rest.as_bytes()[nl + 1..].to_vec();
                    return (out, code);
                }
            }
            assert!(
                Instant::now() < deadline,
                "test channel: no answer to {cmd:?}: {text}"
            );
            self.fill();
        }
    }
}

pub fn wait_console(q: &Qemu, want: &str, secs: u64) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let c = q.console();
        if c.contains(want) {
            return c;
        }
        assert!(
            Instant::now() < deadline,
            "no {want:?} on the console after {secs} s:\n{c}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}
