//! The `Remote` seam: what a backend needs to drive a machine it does not run on — execute a
//! shell script, upload a file, download a file or folder — as Jepsen's `jepsen.control` has.
//! [`crate::backend::ssh`]'s `SshRemote` implements it with the system's OpenSSH client;
//! [`NamespaceRemote`] is the same seam for a network namespace of this machine (`ip netns
//! exec`, and plain copies, since a namespace shares the file system). A `kubectl exec`/`cp`
//! remote would be a third (ARCHITECTURE.md says what it would take).

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Why a remote step failed. `Unreachable` is the connection, not the command: the host may
/// be down or cut off, and what was on it may still be running.
#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("host {host}: unreachable: {why}")]
    Unreachable { host: String, why: String },
    #[error("host {host}: `{step}` failed ({status}): {stderr}")]
    Failed {
        host: String,
        step: String,
        status: String,
        stderr: String,
    },
    #[error("host {host}: `{step}` did not finish within {} s and was stopped", .secs)]
    Timeout {
        host: String,
        step: String,
        secs: u64,
    },
    #[error("host {host}: {step}: {source}")]
    Local {
        host: String,
        step: String,
        #[source]
        source: std::io::Error,
    },
}

impl RemoteError {
    pub fn is_unreachable(&self) -> bool {
        matches!(self, RemoteError::Unreachable { .. })
    }
}

/// A machine the harness drives from outside.
pub trait Remote: Send + Sync {
    /// How messages name it.
    fn host(&self) -> &str;
    /// Run `script` with `sh -c` there, `input` on its standard input, bounded by `timeout`;
    /// its standard output on success.
    fn exec(
        &self,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, RemoteError>;
    /// Copy the local file `local` to the path `remote` there (its folder must exist).
    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError>;
    /// Copy the file or folder `remote` there to `local` here.
    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError>;
}

/// `s` as one single-quoted word of a POSIX shell.
pub fn sh_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-=:,@+%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What [`run_bounded`] saw: exit status (`None`: killed at the deadline), stdout, stderr.
pub(crate) struct Ran {
    pub status: Option<std::process::ExitStatus>,
    pub stdout: String,
    pub stderr: String,
}

/// Run `cmd` to completion or `timeout` (then kill it), feeding `input`. The child gets its
/// own process group, so a terminal's Ctrl-C reaches the harness only, which then cleans up
/// through the very commands that Ctrl-C would otherwise have cut.
pub(crate) fn run_bounded(
    mut cmd: Command,
    input: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<Ran> {
    use std::os::unix::process::CommandExt;
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .process_group(0);
    let mut child = cmd.spawn()?;
    let writer = match (input, child.stdin.take()) {
        (Some(bytes), Some(mut stdin)) => {
            let bytes = bytes.to_vec();
            // A failed write shows up as the command's own error.
            Some(std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            }))
        }
        _ => None,
    };
    let out = reader(child.stdout.take());
    let err = reader(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait()? {
            Some(s) => break Some(s),
            None if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(5)),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    if let Some(w) = writer {
        let _ = w.join();
    }
    Ok(Ran {
        status,
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
    })
}

fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let _ = p.read_to_string(&mut s);
        }
        s
    })
}

/// A network namespace of this machine as a [`Remote`]: scripts through `ip netns exec`,
/// files copied in place (a namespace has the host's file system). Needs root.
pub struct NamespaceRemote {
    pub namespace: String,
}

impl Remote for NamespaceRemote {
    fn host(&self) -> &str {
        &self.namespace
    }

    fn exec(
        &self,
        script: &str,
        input: Option<&[u8]>,
        timeout: Duration,
    ) -> Result<String, RemoteError> {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.namespace, "sh", "-c", script]);
        let step = script.to_string();
        let ran = run_bounded(cmd, input, timeout).map_err(|source| RemoteError::Local {
            host: self.namespace.clone(),
            step: step.clone(),
            source,
        })?;
        match ran.status {
            None => Err(RemoteError::Timeout {
                host: self.namespace.clone(),
                step,
                secs: timeout.as_secs(),
            }),
            Some(s) if s.success() => Ok(ran.stdout),
            Some(s) => Err(RemoteError::Failed {
                host: self.namespace.clone(),
                step,
                status: s.to_string(),
                stderr: ran.stderr.trim().to_string(),
            }),
        }
    }

    fn upload(&self, local: &Path, remote: &str) -> Result<(), RemoteError> {
        std::fs::copy(local, remote)
            .map(|_| ())
            .map_err(|source| RemoteError::Local {
                host: self.namespace.clone(),
                step: format!("copy {} to {remote}", local.display()),
                source,
            })
    }

    fn download(&self, remote: &str, local: &Path) -> Result<(), RemoteError> {
        let ran = run_bounded(
            {
                let mut c = Command::new("cp");
                c.arg("-a").arg(remote).arg(local);
                c
            },
            None,
            Duration::from_secs(60),
        );
        match ran {
            Ok(r) if r.status.is_some_and(|s| s.success()) => Ok(()),
            Ok(r) => Err(RemoteError::Failed {
                host: self.namespace.clone(),
                step: format!("cp -a {remote} {}", local.display()),
                status: format!("{:?}", r.status),
                stderr: r.stderr.trim().to_string(),
            }),
            Err(source) => Err(RemoteError::Local {
                host: self.namespace.clone(),
                step: format!("cp -a {remote} {}", local.display()),
                source,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_the_shell() {
        assert_eq!(sh_quote("/tmp/a-b_c.d"), "/tmp/a-b_c.d");
        assert_eq!(sh_quote("n1=1.2.3.4:7000,n2=x"), "n1=1.2.3.4:7000,n2=x");
        assert_eq!(sh_quote(""), "''");
        assert_eq!(sh_quote("it's a $x"), "'it'\\''s a $x'");
        let word = "it's \"a\" $HOME `x` \\ ;|&";
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("printf %s {}", sh_quote(word)))
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), word);
    }

    #[test]
    fn a_bounded_command_is_stopped_at_its_deadline() {
        let mut c = Command::new("sleep");
        c.arg("30");
        let r = run_bounded(c, None, Duration::from_millis(200)).unwrap();
        assert!(r.status.is_none());
        let mut c = Command::new("cat");
        c.arg("-");
        let r = run_bounded(c, Some(b"in"), Duration::from_secs(20)).unwrap();
        assert_eq!(r.stdout, "in");
    }
}
