//! `quorate-node`: parse flags, open storage, serve until SIGTERM/SIGINT.
//!
//! Exit codes: 0 after a clean shutdown (SIGTERM/SIGINT), 3 when it cannot start (bad flag,
//! refused configuration such as R > N, unusable data dir, address in use) — the same "error"
//! code as the `quorate` commands.
//!
//! `--check-config` (anywhere among the flags): validate the flags as a start would, print
//! `configuration ok` and, on the next line, the resolved configuration as one JSON object
//! (presets and defaults applied), or the error, and exit 0 or 3 — without opening the data
//! directory or binding. The harness runs it before starting a cluster, so a refused
//! configuration is reported at once in the node's own words, and reads the resolved settings
//! it needs (replicas, virtual nodes, the anti-entropy period) instead of restating the
//! node's defaults.
use anyhow::Context;
use clap::Parser;
use quorate_node::config::Cli;
use quorate_node::node::Node;

fn main() {
    // Handled outside clap so the node's own flag table stays as it is.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let before = args.len();
    args.retain(|a| a != "--check-config");
    let check_only = args.len() != before;
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 3 } else { 0 };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    if check_only {
        match cli.into_config() {
            Ok(cfg) => {
                println!("configuration ok");
                match serde_json::to_string(&cfg) {
                    Ok(line) => println!("{line}"),
                    Err(e) => {
                        eprintln!("quorate-node: cannot print the configuration: {e}");
                        std::process::exit(3);
                    }
                }
                std::process::exit(0);
            }
            Err(e) => {
                eprintln!("quorate-node: invalid configuration: {e}");
                std::process::exit(3);
            }
        }
    }
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("quorate-node: cannot start the runtime: {e}");
            std::process::exit(3);
        }
    };
    if let Err(e) = rt.block_on(run(cli)) {
        eprintln!("quorate-node: {e:#}");
        std::process::exit(3);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Node logs usually land in files (the harness's nodes/<id>.log): colour only a terminal.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cfg = cli.into_config().context("invalid configuration")?;
    let listen = cfg.listen;
    let id = cfg.id.clone();
    let node = Node::open(cfg.clone())
        .with_context(|| format!("opening data dir {}", cfg.data_dir.display()))?;
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("binding {listen}"))?;
    node.spawn_background();
    tracing::info!(
        id,
        %listen,
        n = cfg.n,
        r = cfg.r,
        w = cfg.w,
        write_mode = ?cfg.write_mode,
        read_repair = ?cfg.read_repair,
        sloppy = cfg.sloppy_quorum,
        fsync = ?cfg.fsync,
        "quorate-node listening"
    );
    quorate_node::http::serve(listener, node, shutdown())
        .await
        .context("serving")?;
    Ok(())
}

async fn shutdown() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
