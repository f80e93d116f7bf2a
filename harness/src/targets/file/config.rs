//! A target file (`--target-file FILE.toml`, docs/TARGETS.md): read, checked key by key and
//! placeholder by placeholder, with every refusal naming the file, the line and what was
//! expected. Nothing here runs anything: [`FileConfig::prepare`] is the one step that looks
//! at the machine (are the commands there?).

use crate::backend::BackendKind;
use crate::nemesis::Fault;
use quorate_workloads::OpKind;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// A string list with the place of each entry.
type Words = Spanned<Vec<Spanned<String>>>;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    name: Spanned<String>,
    version_command: Option<Words>,
    ports: Option<Words>,
    #[serde(default)]
    proxied_peers: bool,
    ops: Option<Words>,
    faults: Option<Words>,
    #[serde(default)]
    libc_clock: bool,
    quiet_s: Option<Spanned<f64>>,
    member: Spanned<RawMember>,
    setup: Option<RawSetup>,
    client: Spanned<RawClient>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMember {
    command: Words,
    #[serde(default)]
    env: BTreeMap<String, Spanned<String>>,
    ready: Spanned<RawReady>,
    start_timeout_ms: Option<Spanned<u64>>,
    stop_signal: Option<Spanned<String>>,
    stop_grace_ms: Option<u64>,
    time_command: Option<Words>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawReady {
    tcp: Option<Spanned<String>>,
    http: Option<Spanned<String>>,
    command: Option<Words>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSetup {
    command: Words,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawClient {
    api: Option<Spanned<String>>,
    adapter: Option<Words>,
    s3: Option<Spanned<RawS3>>,
}

/// `[client.s3]`: what `api = "s3"` needs, made by the file's set-up (bucket, key and rights).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawS3 {
    bucket: String,
    region: Option<String>,
    access_key: String,
    secret_key: String,
}

/// A template (a command word, an environment value, a URL) and the line it came from.
#[derive(Debug, Clone)]
pub struct Template {
    pub text: String,
    pub line: usize,
}

/// A command: its words, each a template, and the line of the list.
#[derive(Debug, Clone)]
pub struct CommandT {
    pub words: Vec<Template>,
    pub line: usize,
}

/// When a started member counts as up.
#[derive(Debug, Clone)]
pub enum Ready {
    /// This named port (its index) accepts a TCP connection.
    Tcp(usize),
    /// This URL answers a 2xx status to a GET.
    Http(Template),
    /// This command exits 0.
    Command(CommandT),
}

/// What clients speak.
#[derive(Debug, Clone)]
pub enum ClientKind {
    /// A built-in API: `node`, `etcd`, `etcd-serializable`.
    Builtin(String),
    /// The built-in S3 client (`--target garage`'s) on the members' first port, with the
    /// bucket and key the file names (its set-up makes them).
    S3(S3Client),
    /// An adapter command, one process per client (docs/INTERFACES.md, "The adapter
    /// protocol").
    Adapter(CommandT),
}

/// `[client.s3]`.
#[derive(Debug, Clone, PartialEq)]
pub struct S3Client {
    pub bucket: String,
    /// Default `us-east-1` (S3's; Garage's own default is `garage`).
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
}

/// A checked target file.
#[derive(Debug, Clone)]
pub struct FileConfig {
    /// The file, as given.
    pub path: PathBuf,
    /// Its folder, absolute (`{target_dir}`).
    pub dir: PathBuf,
    pub name: String,
    pub version_command: Option<CommandT>,
    /// Port names; the first is where clients send ops.
    pub ports: Vec<String>,
    pub proxied_peers: bool,
    pub ops: Vec<OpKind>,
    pub faults: Vec<Fault>,
    pub libc_clock: bool,
    pub quiet: Duration,
    pub command: CommandT,
    pub env: Vec<(String, Template)>,
    pub ready: Ready,
    pub start_timeout: Duration,
    pub stop_signal: nix::sys::signal::Signal,
    pub stop_grace: Duration,
    pub time_command: Option<CommandT>,
    pub setup: Option<(CommandT, Duration)>,
    pub client: ClientKind,
}

impl FileConfig {
    /// `[client.s3]`, when clients speak the built-in S3 API.
    pub fn client_s3(&self) -> Option<&S3Client> {
        match &self.client {
            ClientKind::S3(c) => Some(c),
            _ => None,
        }
    }
}

/// Where placeholders are filled: each place offers its own set (docs/TARGETS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A member's command, environment, readiness and time command.
    Member,
    /// The set-up command.
    Setup,
    /// The adapter command.
    Adapter,
}

/// One member's addresses, as placeholders need them.
pub struct MemberAddrs<'a> {
    pub id: &'a str,
    pub index: usize,
    pub addrs: &'a [SocketAddr],
    /// Every member as this one dials it (its first port; through the proxy on `local`).
    pub dialled: &'a [(String, SocketAddr)],
    pub members: &'a [(String, Vec<SocketAddr>)],
    pub data_dir: &'a Path,
}

/// The values of every placeholder offered at `place`.
pub fn vars(
    cfg: &FileConfig,
    place: Place,
    run_dir: &Path,
    member: Option<&MemberAddrs>,
    members: &[(String, Vec<SocketAddr>)],
    adapter: Option<(&str, usize, SocketAddr, u64)>,
) -> BTreeMap<String, String> {
    let mut v = BTreeMap::new();
    v.insert("target_dir".into(), cfg.dir.display().to_string());
    v.insert("run_dir".into(), run_dir.display().to_string());
    if place != Place::Adapter {
        for (k, (id, addrs)) in members.iter().enumerate() {
            let n = format!("n{}", k + 1);
            debug_assert_eq!(&n, id);
            v.insert(format!("{n}.host"), addrs[0].ip().to_string());
            for (name, a) in cfg.ports.iter().zip(addrs) {
                v.insert(format!("{n}.port.{name}"), a.port().to_string());
                v.insert(format!("{n}.addr.{name}"), a.to_string());
            }
        }
        for (p, name) in cfg.ports.iter().enumerate() {
            let each = |f: &dyn Fn(&str, SocketAddr) -> String| {
                members
                    .iter()
                    .map(|(id, a)| f(id, a[p]))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            v.insert(format!("members.{name}"), each(&|_, a| a.to_string()));
            v.insert(
                format!("cluster.{name}"),
                each(&|id, a| format!("{id}=http://{a}")),
            );
        }
    }
    if let Some(m) = member {
        v.insert("id".into(), m.id.to_string());
        v.insert("index".into(), m.index.to_string());
        v.insert("host".into(), m.addrs[0].ip().to_string());
        v.insert("data_dir".into(), m.data_dir.display().to_string());
        for (name, a) in cfg.ports.iter().zip(m.addrs) {
            v.insert(format!("port.{name}"), a.port().to_string());
            v.insert(format!("addr.{name}"), a.to_string());
        }
        let peers: Vec<String> = m.dialled.iter().map(|(p, a)| format!("{p}={a}")).collect();
        v.insert("peers".into(), peers.join(","));
        let others: Vec<String> = m
            .dialled
            .iter()
            .filter(|(p, _)| p != m.id)
            .map(|(_, a)| a.to_string())
            .collect();
        v.insert("others".into(), others.join(","));
        for (p, a) in m.dialled {
            v.insert(format!("{p}.dial"), a.to_string());
            v.insert(format!("{p}.dial.host"), a.ip().to_string());
            v.insert(format!("{p}.dial.port"), a.port().to_string());
        }
    }
    if place == Place::Adapter {
        // `members` holds each member's client address (through the proxy on `local`).
        for (k, (_, addrs)) in members.iter().enumerate() {
            v.insert(format!("n{}.addr", k + 1), addrs[0].to_string());
        }
    }
    if let Some((id, index, addr, process)) = adapter {
        v.insert("id".into(), id.to_string());
        v.insert("index".into(), index.to_string());
        v.insert("addr".into(), addr.to_string());
        v.insert("host".into(), addr.ip().to_string());
        v.insert("port".into(), addr.port().to_string());
        v.insert("process".into(), process.to_string());
    }
    v
}

/// Fill `{name}` placeholders (`{{` and `}}` are literal braces). An unknown name is an error
/// naming it (the file was checked, so this only happens on a bug).
pub fn fill(t: &Template, vars: &BTreeMap<String, String>) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = t.text.as_str();
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if tail.starts_with('}') {
            return Err(format!(
                "a lone }} in {:?} (write }}}} for a brace)",
                t.text
            ));
        }
        let Some(end) = tail.find('}') else {
            return Err(format!(
                "an unclosed {{ in {:?} (write {{{{ for a brace)",
                t.text
            ));
        };
        let name = &tail[1..end];
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                let mut known: Vec<&str> = vars.keys().map(String::as_str).collect();
                known.retain(|k| {
                    !k.starts_with('n')
                        || !k[1..2].chars().all(|c| c.is_ascii_digit())
                        || k.starts_with("n1.")
                });
                return Err(format!(
                    "unknown placeholder {{{name}}}; expected one of {}",
                    known
                        .iter()
                        .map(|k| format!("{{{k}}}"))
                        .collect::<Vec<_>>()
                        .join(" ")
                ));
            }
        }
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Fill every word of a command.
pub fn fill_command(c: &CommandT, vars: &BTreeMap<String, String>) -> Result<Vec<String>, String> {
    c.words.iter().map(|w| fill(w, vars)).collect()
}

/// 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

struct Ctx<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Ctx<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_of(self.text, s.span().start)
    }
    fn err(&self, line: usize, what: impl std::fmt::Display) -> String {
        format!("{}:{line}: {what}", self.path.display())
    }
    fn command(&self, key: &str, w: &Words) -> Result<CommandT, String> {
        let line = self.line(w);
        if w.get_ref().is_empty() || w.get_ref()[0].get_ref().trim().is_empty() {
            return Err(self.err(
                line,
                format!("{key}: expected a command: a list of words, the program first"),
            ));
        }
        Ok(CommandT {
            words: w
                .get_ref()
                .iter()
                .map(|s| Template {
                    text: s.get_ref().clone(),
                    line: self.line(s),
                })
                .collect(),
            line,
        })
    }
}

impl FileConfig {
    /// Read and check `path` for a cluster of `nodes` run on `backend` with `faults` and
    /// client `ops`. Everything refused names the file and line.
    pub fn load(
        path: &Path,
        nodes: usize,
        backend: BackendKind,
        faults: &[Fault],
        ops: &[OpKind],
    ) -> Result<FileConfig, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("--target-file {}: {e}", path.display()))?;
        let ctx = Ctx { path, text: &text };
        let raw: Raw = toml::from_str(&text).map_err(|e| {
            let line = e.span().map_or(1, |s| line_of(&text, s.start));
            ctx.err(line, e.message().trim())
        })?;
        let dir = std::path::absolute(path.parent().unwrap_or(Path::new(".")))
            .unwrap_or_else(|_| PathBuf::from("."));
        let dir = if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir
        };

        let name = raw.name.get_ref().clone();
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(ctx.err(
                ctx.line(&raw.name),
                format!("name {name:?}: expected letters, digits, - and _ (it names the run)"),
            ));
        }
        let ports: Vec<String> = match &raw.ports {
            None => vec!["client".into()],
            Some(p) => {
                if p.get_ref().is_empty() {
                    return Err(ctx.err(ctx.line(p), "ports: expected at least one port name (the first is where clients send ops)"));
                }
                let mut seen = Vec::new();
                for s in p.get_ref() {
                    let n = s.get_ref();
                    if n.is_empty()
                        || !n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        || seen.contains(n)
                    {
                        return Err(ctx.err(
                            ctx.line(s),
                            format!("ports: {n:?}: expected a new name of letters, digits and _"),
                        ));
                    }
                    seen.push(n.clone());
                }
                seen
            }
        };
        let file_ops: Vec<OpKind> = match &raw.ops {
            None => vec![OpKind::Read, OpKind::Write],
            Some(list) => list
                .get_ref()
                .iter()
                .map(|s| {
                    s.get_ref().parse::<OpKind>().map_err(|_| {
                        ctx.err(
                            ctx.line(s),
                            format!("ops: {:?}: expected read, write or cas", s.get_ref()),
                        )
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        if let Some(op) = ops.iter().find(|o| !file_ops.contains(o)) {
            let line = raw.ops.as_ref().map_or(1, |o| ctx.line(o));
            let spoken: Vec<&str> = file_ops.iter().map(|o| o.name()).collect();
            return Err(ctx.err(
                line,
                format!(
                    "--ops {}: this store's clients speak only {} (ops = [...] here); expected --ops {}",
                    op.name(),
                    spoken.join(", "),
                    spoken.join(",")
                ),
            ));
        }
        let mut file_faults = Vec::new();
        let mut fault_line = BTreeMap::new();
        for s in raw.faults.iter().flat_map(|f| f.get_ref()) {
            let f = Fault::ALL
                .into_iter()
                .find(|f| f.name() == s.get_ref())
                .ok_or_else(|| {
                    let all: Vec<&str> = Fault::ALL.into_iter().map(Fault::name).collect();
                    ctx.err(
                        ctx.line(s),
                        format!(
                            "faults: {:?}: expected one of {}",
                            s.get_ref(),
                            all.join(", ")
                        ),
                    )
                })?;
            if f == Fault::ClockSkew && !raw.libc_clock {
                return Err(ctx.err(
                    ctx.line(s),
                    "faults: clock-skew needs libc_clock = true: libfaketime moves only clocks read \
                     through libc, which a Go program (etcd, nats-server) does not use; expected \
                     libc_clock = true for a libc program, or drop clock-skew",
                ));
            }
            if f == Fault::Reconfigure {
                return Err(ctx.err(
                    ctx.line(s),
                    "faults: reconfigure: a target file has no way yet to say how its store \
                     changes membership (the fault speaks Garage's layouts, through --target \
                     garage); expected it left out",
                ));
            }
            fault_line.insert(f, ctx.line(s));
            file_faults.push(f);
        }
        let faults_line = raw.faults.as_ref().map_or(1, |f| ctx.line(f));
        for f in faults {
            if !file_faults.contains(f) {
                let listed: Vec<&str> = file_faults.iter().map(|f| f.name()).collect();
                return Err(ctx.err(
                    faults_line,
                    format!(
                        "--nemesis {}: this store cannot take it (faults = [{}] here); expected \
                         --nemesis to list only those, or none",
                        f.name(),
                        listed.join(", ")
                    ),
                ));
            }
            let link = matches!(f, Fault::Partition | Fault::Slow | Fault::Flaky);
            if link && backend == BackendKind::Local && !raw.proxied_peers {
                return Err(ctx.err(
                    fault_line[f],
                    format!(
                        "--nemesis {} on --backend local needs proxied_peers = true (members that \
                         dial each other at {{peers}}/{{others}}/{{nK.dial}}, which the local \
                         proxy can cut); expected --backend netns, or proxied_peers = true",
                        f.name()
                    ),
                ));
            }
        }
        let quiet = match &raw.quiet_s {
            None => Duration::from_secs(2),
            Some(q) if q.get_ref().is_finite() && *q.get_ref() >= 0.0 => {
                Duration::from_secs_f64(*q.get_ref())
            }
            Some(q) => return Err(ctx.err(ctx.line(q), "quiet_s: expected seconds >= 0")),
        };
        let m = raw.member.get_ref();
        let command = ctx.command("member.command", &m.command)?;
        let env: Vec<(String, Template)> = m
            .env
            .iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    Template {
                        text: v.get_ref().clone(),
                        line: ctx.line(v),
                    },
                )
            })
            .collect();
        let r = m.ready.get_ref();
        let ready = match (&r.tcp, &r.http, &r.command) {
            (Some(t), None, None) => {
                let i = ports.iter().position(|p| p == t.get_ref()).ok_or_else(|| {
                    ctx.err(ctx.line(t), format!("member.ready.tcp {:?}: expected a port name from ports ({})", t.get_ref(), ports.join(", ")))
                })?;
                Ready::Tcp(i)
            }
            (None, Some(h), None) => Ready::Http(Template {
                text: h.get_ref().clone(),
                line: ctx.line(h),
            }),
            (None, None, Some(c)) => Ready::Command(ctx.command("member.ready.command", c)?),
            _ => {
                return Err(ctx.err(
                    ctx.line(&m.ready),
                    "member.ready: expected exactly one of tcp = \"PORT\", http = \"URL\", command = [...]",
                ))
            }
        };
        let start_timeout = match &m.start_timeout_ms {
            None => Duration::from_secs(20),
            Some(t) if (1..=600_000).contains(t.get_ref()) => Duration::from_millis(*t.get_ref()),
            Some(t) => {
                return Err(ctx.err(ctx.line(t), "member.start_timeout_ms: expected 1 to 600000"))
            }
        };
        let stop_signal = match &m.stop_signal {
            None => nix::sys::signal::Signal::SIGTERM,
            Some(s) => {
                let name = s.get_ref().to_ascii_uppercase();
                let name = if name.starts_with("SIG") {
                    name
                } else {
                    format!("SIG{name}")
                };
                name.parse().map_err(|_| {
                    ctx.err(ctx.line(s), format!("member.stop_signal {:?}: expected a signal name (SIGTERM, SIGINT, SIGKILL, …)", s.get_ref()))
                })?
            }
        };
        let stop_grace = Duration::from_millis(m.stop_grace_ms.unwrap_or(5000).min(60_000));
        let time_command = m
            .time_command
            .as_ref()
            .map(|c| ctx.command("member.time_command", c))
            .transpose()?;
        let setup = raw
            .setup
            .as_ref()
            .map(|s| {
                ctx.command("setup.command", &s.command).map(|c| {
                    (
                        c,
                        Duration::from_millis(s.timeout_ms.unwrap_or(30_000).clamp(1, 600_000)),
                    )
                })
            })
            .transpose()?;
        let cl = raw.client.get_ref();
        let client = match (&cl.api, &cl.adapter) {
            _ if cl.s3.is_some() && cl.api.as_ref().map(|a| a.get_ref().as_str()) != Some("s3") => {
                let s3 = cl.s3.as_ref().expect("checked");
                return Err(ctx.err(
                    ctx.line(s3),
                    "client.s3: only with api = \"s3\"; expected it left out, or api = \"s3\"",
                ));
            }
            (Some(a), None) if a.get_ref() == "s3" => {
                let Some(s3) = &cl.s3 else {
                    return Err(ctx.err(
                        ctx.line(a),
                        "client.api \"s3\": expected a [client.s3] table with bucket, access_key \
                         and secret_key (and region, default us-east-1), which the set-up makes",
                    ));
                };
                let r = s3.get_ref();
                ClientKind::S3(S3Client {
                    bucket: r.bucket.clone(),
                    region: r.region.clone().unwrap_or_else(|| "us-east-1".into()),
                    access_key: r.access_key.clone(),
                    secret_key: r.secret_key.clone(),
                })
            }
            (Some(a), None) => {
                super::builtin_api_check(a.get_ref()).map_err(|why| {
                    ctx.err(ctx.line(a), format!("client.api {:?}: {why}", a.get_ref()))
                })?;
                ClientKind::Builtin(a.get_ref().clone())
            }
            (None, Some(c)) => ClientKind::Adapter(ctx.command("client.adapter", c)?),
            _ => {
                return Err(ctx.err(
                    ctx.line(&raw.client),
                    "client: expected exactly one of api = \"node\" or adapter = [...]",
                ))
            }
        };
        let version_command = raw
            .version_command
            .as_ref()
            .map(|c| ctx.command("version_command", c))
            .transpose()?;
        let cfg = FileConfig {
            path: path.to_path_buf(),
            dir,
            name,
            version_command,
            ports,
            proxied_peers: raw.proxied_peers,
            ops: file_ops,
            faults: file_faults,
            libc_clock: raw.libc_clock,
            quiet,
            command,
            env,
            ready,
            start_timeout,
            stop_signal,
            stop_grace,
            time_command,
            setup,
            client,
        };
        cfg.check_placeholders(nodes)?;
        Ok(cfg)
    }

    /// Every template filled with sample values for `nodes` members: an unknown placeholder
    /// is refused with its line.
    fn check_placeholders(&self, nodes: usize) -> Result<(), String> {
        let ids = crate::backend::node_ids(nodes);
        let members: Vec<(String, Vec<SocketAddr>)> = ids
            .iter()
            .enumerate()
            .map(|(k, id)| {
                let a: Vec<SocketAddr> = (0..self.ports.len())
                    .map(|p| SocketAddr::from(([127, 0, 0, 1], 20000 + (k * 10 + p) as u16)))
                    .collect();
                (id.clone(), a)
            })
            .collect();
        let dialled: Vec<(String, SocketAddr)> =
            members.iter().map(|(id, a)| (id.clone(), a[0])).collect();
        let run_dir = Path::new("/run");
        let m = MemberAddrs {
            id: &members[0].0,
            index: 1,
            addrs: &members[0].1,
            dialled: &dialled,
            members: &members,
            data_dir: Path::new("/data"),
        };
        let member = vars(self, Place::Member, run_dir, Some(&m), &members, None);
        let setup = vars(self, Place::Setup, run_dir, None, &members, None);
        let adapter = vars(
            self,
            Place::Adapter,
            run_dir,
            None,
            &members,
            Some(("n1", 1, members[0].1[0], 0)),
        );
        let check = |t: &Template, v: &BTreeMap<String, String>, key: &str| {
            fill(t, v).map(|_| ()).map_err(|why| {
                format!(
                    "{}:{}: {key} {:?}: {why}",
                    self.path.display(),
                    t.line,
                    t.text
                )
            })
        };
        let mut member_templates: Vec<(&Template, &str)> = self
            .command
            .words
            .iter()
            .map(|w| (w, "member.command"))
            .collect();
        member_templates.extend(self.env.iter().map(|(_, t)| (t, "member.env")));
        match &self.ready {
            Ready::Http(t) => member_templates.push((t, "member.ready.http")),
            Ready::Command(c) => {
                member_templates.extend(c.words.iter().map(|w| (w, "member.ready.command")))
            }
            Ready::Tcp(_) => {}
        }
        if let Some(c) = &self.time_command {
            member_templates.extend(c.words.iter().map(|w| (w, "member.time_command")));
        }
        for (t, key) in member_templates {
            check(t, &member, key)?;
        }
        if let Some((c, _)) = &self.setup {
            for w in &c.words {
                check(w, &setup, "setup.command")?;
            }
        }
        if let Some(c) = &self.version_command {
            let none = vars(self, Place::Setup, run_dir, None, &[], None);
            for w in &c.words {
                check(w, &none, "version_command")?;
            }
        }
        if let ClientKind::Adapter(c) = &self.client {
            for w in &c.words {
                check(w, &adapter, "client.adapter")?;
            }
        }
        Ok(())
    }

    /// What needs the machine: every command's program must be there (a path, relative to
    /// the target file's folder when it has a `/` and is not absolute, or a name on `PATH` or
    /// beside `quorate` itself).
    pub fn prepare(&self) -> Result<(), String> {
        let mut cmds: Vec<(&CommandT, &str)> = vec![(&self.command, "member.command")];
        if let Ready::Command(c) = &self.ready {
            cmds.push((c, "member.ready.command"));
        }
        if let Some(c) = &self.time_command {
            cmds.push((c, "member.time_command"));
        }
        if let Some((c, _)) = &self.setup {
            cmds.push((c, "setup.command"));
        }
        if let Some(c) = &self.version_command {
            cmds.push((c, "version_command"));
        }
        if let ClientKind::Adapter(c) = &self.client {
            cmds.push((c, "client.adapter"));
        }
        let v = vars(self, Place::Setup, Path::new("/run"), None, &[], None);
        for (c, key) in cmds {
            let program = fill(&c.words[0], &v).unwrap_or_else(|_| c.words[0].text.clone());
            if program.contains('{') {
                continue;
            }
            if self.find_program(&program).is_none() {
                return Err(format!(
                    "{}:{}: {key}: program {program:?} not found (expected an executable on PATH, \
                     or a path, relative to {})",
                    self.path.display(),
                    c.line,
                    self.dir.display()
                ));
            }
        }
        Ok(())
    }

    /// Where `program` is: a path (relative ones from the target file's folder) or a name
    /// on `PATH`.
    pub fn find_program(&self, program: &str) -> Option<PathBuf> {
        let exec = |p: &Path| {
            use std::os::unix::fs::PermissionsExt;
            p.metadata()
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            let p = Path::new(program);
            let p = if p.is_absolute() {
                p.to_path_buf()
            } else {
                self.dir.join(p)
            };
            return exec(&p).then_some(p);
        }
        std::env::var_os("PATH")
            .and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|d| d.join(program))
                    .find(|p| exec(p))
            })
            .or_else(|| {
                // Beside quorate itself (quorate-node after `cargo build`).
                let me = std::env::current_exe().ok()?;
                let p = me.parent()?.join(program);
                exec(&p).then_some(p)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(text: &str) -> Template {
        Template {
            text: text.into(),
            line: 1,
        }
    }

    #[test]
    fn placeholders_fill_and_braces_escape() {
        let mut v = BTreeMap::new();
        v.insert("id".to_string(), "n2".to_string());
        v.insert("addr.client".to_string(), "127.0.0.1:9".to_string());
        assert_eq!(
            fill(&t("{id}@{addr.client}"), &v).unwrap(),
            "n2@127.0.0.1:9"
        );
        assert_eq!(fill(&t("{{id}} }}x"), &v).unwrap(), "{id} }x");
        let e = fill(&t("--x={nope}"), &v).unwrap_err();
        assert!(
            e.starts_with("unknown placeholder {nope}; expected one of {addr.client} {id}"),
            "{e}"
        );
        assert!(fill(&t("{id"), &v).unwrap_err().contains("unclosed"));
        assert!(fill(&t("id}"), &v).unwrap_err().contains("lone"));
    }

    fn load(text: &str, backend: BackendKind, faults: &[Fault]) -> Result<FileConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.toml");
        std::fs::write(&p, text).unwrap();
        FileConfig::load(&p, 3, backend, faults, &[OpKind::Read, OpKind::Write])
            .map_err(|e| e.replace(&p.display().to_string(), "t.toml"))
    }

    const BASE: &str = "name = \"x\"\nfaults = [\"partition\", \"kill\"]\n[member]\ncommand = [\"s\", \"{n3.addr.client}\", \"{cluster.client}\"]\nready = { tcp = \"client\" }\n[client]\nadapter = [\"a\", \"{addr}\", \"{n2.addr}\", \"{process}\"]\n";

    /// `api = "s3"` takes its bucket and key from `[client.s3]`; either without the other is
    /// refused with its line.
    #[test]
    fn the_s3_client_needs_its_table_and_the_table_its_api() {
        let s3 = "[client]\napi = \"s3\"\ns3 = { bucket = \"b\", access_key = \"k\", secret_key = \"s\" }\n";
        let base = BASE.split("[client]").next().unwrap();
        let c = load(&format!("{base}{s3}"), BackendKind::Netns, &[]).unwrap();
        assert_eq!(
            c.client_s3(),
            Some(&S3Client {
                bucket: "b".into(),
                region: "us-east-1".into(),
                access_key: "k".into(),
                secret_key: "s".into(),
            })
        );
        let e = load(
            &format!("{base}[client]\napi = \"s3\"\n"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.toml:7: client.api \"s3\": expected a [client.s3] table"),
            "{e}"
        );
        let e = load(
            &format!("{base}{}", s3.replace("api = \"s3\"", "api = \"node\"")),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.toml:8: client.s3: only with api = \"s3\""),
            "{e}"
        );
        let e = load(
            &format!("{base}{}", s3.replace("bucket", "bukket")),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(e.contains("unknown field `bukket`"), "{e}");
    }

    #[test]
    fn a_file_loads_and_refuses_with_its_line() {
        let c = load(BASE, BackendKind::Netns, &[Fault::Partition]).unwrap();
        assert_eq!(c.ports, ["client"]);
        assert_eq!(c.stop_signal, nix::sys::signal::Signal::SIGTERM);
        assert!(matches!(c.ready, Ready::Tcp(0)));
        // Link faults on the local backend need members dialling through the proxy.
        let e = load(BASE, BackendKind::Local, &[Fault::Partition]).unwrap_err();
        assert!(
            e.starts_with("t.toml:2: --nemesis partition on --backend local needs proxied_peers"),
            "{e}"
        );
        load(BASE, BackendKind::Local, &[Fault::Kill]).unwrap();
        // A member placeholder is not an adapter's, and K is bounded by --nodes.
        let e = load(
            &BASE.replace("{process}", "{data_dir}"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.toml:7: client.adapter \"{data_dir}\": unknown placeholder"),
            "{e}"
        );
        let e = load(
            &BASE.replace("{n3.addr.client}", "{n4.addr.client}"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("t.toml:4: member.command"), "{e}");
        let e = load(
            &BASE.replace("tcp = \"client\"", "tcp = \"peer\""),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.toml:5: member.ready.tcp \"peer\": expected a port name"),
            "{e}"
        );
        let e = load(
            &BASE.replace("[client]\n", "[client]\napi = \"node\"\n"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(
            e.starts_with("t.toml:6: client: expected exactly one of"),
            "{e}"
        );
        let e = load(
            &BASE.replace("name = \"x\"\n", "name = \"x\"\nops = [\"read\"]\n"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("t.toml:2: --ops write"), "{e}");
        let e = load(
            &BASE.replace("name = \"x\"\n", "name = 3\n"),
            BackendKind::Netns,
            &[],
        )
        .unwrap_err();
        assert!(e.starts_with("t.toml:1: invalid type"), "{e}");
    }
}
