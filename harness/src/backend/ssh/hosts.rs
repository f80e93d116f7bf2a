//! The hosts file of `--backend ssh --hosts FILE`: which machines run the members and how to
//! reach them. TOML, every key checked: a typo is refused with `FILE:LINE` and what was
//! expected, before anything starts.
//!
//! ```toml
//! # Optional: host keys are checked against this file. Without it the run records each
//! # host's key on first contact (OpenSSH's accept-new) in <run>/ssh/known_hosts.
//! known_hosts = "/home/me/.ssh/known_hosts"
//!
//! [defaults]            # optional; any host key but `address` and `name`
//! user = "root"
//! identity = "/home/me/.ssh/id_ed25519"
//!
//! [[host]]
//! name = "db1"          # optional; the address by default
//! address = "10.0.0.11" # where ssh connects
//! port = 22             # ssh's port (default 22)
//! peer_address = "192.168.0.11" # optional: where members and clients reach this host
//! member_port = 7000    # optional: the member's first port (default 7000)
//! work_dir = "/tmp/quorate"     # optional: the member's files go under it (default)
//! bin_dir = "/opt/quorate"      # optional: programs found here on the host are not uploaded
//! ```

use serde::Deserialize;
use std::collections::BTreeSet;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// The default port a member listens on (a member with several ports takes the next ones).
pub const MEMBER_PORT: u16 = 7000;
/// Where a member's files go on its host, by default.
pub const WORK_DIR: &str = "/tmp/quorate";

/// One host, every default applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Host {
    /// How the run names it (messages, logs).
    pub name: String,
    /// Where ssh connects.
    pub address: String,
    pub port: u16,
    pub user: String,
    /// The private key ssh uses (`None`: ssh's own defaults).
    pub identity: Option<PathBuf>,
    /// The address members listen on and peers, clients and partitions use.
    pub peer_address: IpAddr,
    pub member_port: u16,
    pub work_dir: String,
    /// Where the host keeps programs of its own: a member's program (or the link proxy's
    /// `quorate`) found there under the same file name is run from there, not uploaded.
    pub bin_dir: Option<String>,
}

/// The parsed hosts file.
#[derive(Debug, Clone, PartialEq)]
pub struct HostsFile {
    pub path: PathBuf,
    pub hosts: Vec<Host>,
    /// The known-hosts file the user gave, checked strictly; `None`: recorded on first contact.
    pub known_hosts: Option<PathBuf>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Raw {
    known_hosts: Option<String>,
    #[serde(default)]
    defaults: RawHost,
    #[serde(default)]
    host: Vec<toml::Spanned<RawHost>>,
}

#[derive(Deserialize, Default, Clone)]
#[serde(deny_unknown_fields)]
struct RawHost {
    name: Option<String>,
    address: Option<String>,
    port: Option<u16>,
    user: Option<String>,
    identity: Option<String>,
    peer_address: Option<String>,
    member_port: Option<u16>,
    work_dir: Option<String>,
    bin_dir: Option<String>,
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// `~/…` in a path, as ssh itself would read it.
fn expand_home(p: &str) -> PathBuf {
    match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => Path::new(&home).join(rest),
        _ => PathBuf::from(p),
    }
}

impl HostsFile {
    /// Read and check `path`.
    pub fn read(path: &Path) -> Result<HostsFile, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--hosts {}: {e}", path.display()))?;
        HostsFile::parse(path, &text)
    }

    /// Check `text` (the contents of `path`); errors are `PATH:LINE: what was expected`.
    pub fn parse(path: &Path, text: &str) -> Result<HostsFile, String> {
        let p = path.display();
        let raw: Raw = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start)).unwrap_or(1);
            format!(
                "{p}:{line}: {}; expected the keys known_hosts, [defaults] and [[host]] \
                 tables with address, port, user, identity, peer_address, member_port, work_dir, bin_dir, name",
                e.message().trim_end_matches('\n')
            )
        })?;
        if raw.defaults.address.is_some() || raw.defaults.name.is_some() {
            let at = text.find("[defaults]").unwrap_or(0);
            return Err(format!(
                "{p}:{}: [defaults] cannot set address or name: expected them in each [[host]]",
                line_of(text, at)
            ));
        }
        if raw.host.is_empty() {
            return Err(format!(
                "{p}:1: no [[host]] table: expected one per member, each with an address"
            ));
        }
        let d = &raw.defaults;
        let mut hosts = Vec::new();
        let mut names = BTreeSet::new();
        let mut members = BTreeSet::new();
        for spanned in &raw.host {
            let line = line_of(text, spanned.span().start);
            let h = spanned.get_ref();
            let Some(address) = h.address.clone().filter(|a| !a.trim().is_empty()) else {
                return Err(format!(
                    "{p}:{line}: [[host]] without an address: expected address = \"HOST\""
                ));
            };
            let name = h.name.clone().unwrap_or_else(|| address.clone());
            let at = |what: &str| format!("{p}:{line}: host {name}: {what}");
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-:".contains(&b))
            {
                return Err(at(
                    "name: expected letters, digits, `.`, `_`, `-` or `:` (it names log lines and folders)",
                ));
            }
            if !names.insert(name.clone()) {
                return Err(at("named twice: expected every host once"));
            }
            let Some(user) = h.user.clone().or_else(|| d.user.clone()) else {
                return Err(at(
                    "no user: expected user = \"NAME\" in this [[host]] or in [defaults]",
                ));
            };
            let peer_text = h
                .peer_address
                .clone()
                .or_else(|| d.peer_address.clone())
                .unwrap_or_else(|| address.clone());
            let peer_address: IpAddr = peer_text.parse().map_err(|_| {
                at(&format!(
                    "peer address {peer_text:?}: expected an IP address of the host's own \
                     (members listen on it and partitions match it); set peer_address when \
                     address is a name"
                ))
            })?;
            let member_port = h.member_port.or(d.member_port).unwrap_or(MEMBER_PORT);
            if member_port == 0 || member_port > 65000 {
                return Err(at(&format!(
                    "member_port {member_port}: expected 1 to 65000 (a member may take a few ports above it)"
                )));
            }
            if !members.insert((peer_address, member_port)) {
                return Err(at(&format!(
                    "{peer_address}:{member_port} is another host's member address too: expected one member per address"
                )));
            }
            let work_dir = h
                .work_dir
                .clone()
                .or_else(|| d.work_dir.clone())
                .unwrap_or_else(|| WORK_DIR.to_string());
            if !work_dir.starts_with('/') || work_dir.contains(['\'', '\n']) || work_dir == "/" {
                return Err(at(&format!(
                    "work_dir {work_dir:?}: expected an absolute directory other than / (without quotes)"
                )));
            }
            let bin_dir = h.bin_dir.clone().or_else(|| d.bin_dir.clone());
            if let Some(b) = &bin_dir {
                if !b.starts_with('/') {
                    return Err(at(&format!(
                        "bin_dir {b:?}: expected an absolute directory"
                    )));
                }
            }
            hosts.push(Host {
                name,
                address,
                port: h.port.or(d.port).unwrap_or(22),
                user,
                identity: h
                    .identity
                    .clone()
                    .or_else(|| d.identity.clone())
                    .map(|i| expand_home(&i)),
                peer_address,
                member_port,
                work_dir: work_dir.trim_end_matches('/').to_string(),
                bin_dir: bin_dir.map(|b| b.trim_end_matches('/').to_string()),
            });
        }
        Ok(HostsFile {
            path: path.to_path_buf(),
            hosts,
            known_hosts: raw.known_hosts.map(|k| expand_home(&k)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<HostsFile, String> {
        HostsFile::parse(Path::new("hosts.toml"), text)
    }

    #[test]
    fn defaults_apply_and_hosts_keep_their_order() {
        let f = parse(
            "known_hosts = \"/k\"\n[defaults]\nuser = \"root\"\nidentity = \"/id\"\n\
             \n[[host]]\naddress = \"10.0.0.2\"\n\n[[host]]\nname = \"b\"\naddress = \"db1\"\n\
             peer_address = \"10.0.0.3\"\nport = 2222\nuser = \"me\"\nmember_port = 8000\n\
             work_dir = \"/srv/q/\"\nbin_dir = \"/opt/q/\"\n",
        )
        .unwrap();
        assert_eq!(f.known_hosts, Some(PathBuf::from("/k")));
        assert_eq!(f.hosts.len(), 2);
        let a = &f.hosts[0];
        assert_eq!(
            (a.name.as_str(), a.user.as_str(), a.port, a.member_port),
            ("10.0.0.2", "root", 22, MEMBER_PORT)
        );
        assert_eq!(a.identity, Some(PathBuf::from("/id")));
        assert_eq!(a.work_dir, WORK_DIR);
        let b = &f.hosts[1];
        assert_eq!(
            (b.name.as_str(), b.address.as_str(), b.user.as_str(), b.port),
            ("b", "db1", "me", 2222)
        );
        assert_eq!(b.peer_address.to_string(), "10.0.0.3");
        assert_eq!((b.member_port, b.work_dir.as_str()), (8000, "/srv/q"));
        assert_eq!(
            (a.bin_dir.as_deref(), b.bin_dir.as_deref()),
            (None, Some("/opt/q"))
        );
    }

    #[test]
    fn typos_are_refused_with_file_and_line() {
        for (text, says) in [
            (
                "[defaults]\nuser = \"root\"\n\n[[host]]\nadress = \"10.0.0.1\"\n",
                "hosts.toml:5: unknown field `adress`",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\nuser = \"r\"\nport = \"22\"\n",
                "hosts.toml:4: invalid type",
            ),
            (
                "[[host]]\naddress = \"10.0.0.1\"\n\n[[host]]\nuser = \"r\"\n",
                "hosts.toml:1: host 10.0.0.1: no user",
            ),
            (
                "[defaults]\nuser = \"r\"\n[[host]]\naddress = \"10.0.0.1\"\n[[host]]\nuser = \"r\"\n",
                "hosts.toml:5: [[host]] without an address",
            ),
            (
                "[defaults]\nuser = \"r\"\n[[host]]\naddress = \"db1.example\"\n",
                "hosts.toml:3: host db1.example: peer address \"db1.example\": expected an IP address",
            ),
            (
                "[defaults]\nuser = \"r\"\n[[host]]\naddress = \"10.0.0.1\"\n[[host]]\naddress = \"10.0.0.1\"\n",
                "hosts.toml:5: host 10.0.0.1: named twice",
            ),
            (
                "[defaults]\nuser = \"r\"\nwork_dir = \"tmp\"\n[[host]]\naddress = \"10.0.0.1\"\n",
                "hosts.toml:4: host 10.0.0.1: work_dir \"tmp\": expected an absolute directory",
            ),
            ("known_hosts = \"/k\"\n", "hosts.toml:1: no [[host]] table"),
            ("[[hosts]]\naddress = \"x\"\n", "hosts.toml:1: unknown field `hosts`"),
        ] {
            let e = parse(text).unwrap_err();
            assert!(e.starts_with(says), "{text:?}\n  gave: {e}\n  expected: {says}");
        }
    }
}
