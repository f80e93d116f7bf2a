//! The one thread that forks nodes: `PR_SET_PDEATHSIG` fires when the *thread* that forked
//! a child exits, so forking must happen on a thread that lives as long as the cluster —
//! never on a tokio blocking thread, which the runtime retires after a few idle seconds.

use super::super::{BackendError, Result};
use std::process::{Child, Command};
use std::sync::{mpsc, Mutex};

type SpawnReq = (Command, mpsc::Sender<std::io::Result<Child>>);

pub(super) struct Spawner {
    tx: Mutex<Option<mpsc::Sender<SpawnReq>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Spawner {
    pub(super) fn new() -> Result<Spawner> {
        let (tx, rx) = mpsc::channel::<SpawnReq>();
        let thread = std::thread::Builder::new()
            .name("netns-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            })
            .map_err(|e| BackendError::io("start the netns spawner thread", e))?;
        Ok(Spawner {
            tx: Mutex::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub(super) fn spawn(&self, cmd: Command) -> std::io::Result<Child> {
        let (rtx, rrx) = mpsc::channel();
        let tx = self.tx.lock().unwrap();
        let Some(tx) = tx.as_ref() else {
            return Err(std::io::Error::other("cluster is shut down"));
        };
        tx.send((cmd, rtx))
            .map_err(|_| std::io::Error::other("netns spawner thread is gone"))?;
        rrx.recv()
            .map_err(|_| std::io::Error::other("netns spawner thread is gone"))?
    }

    pub(super) fn stop(&self) {
        self.tx.lock().unwrap().take();
        if let Some(t) = self.thread.lock().unwrap().take() {
            let _ = t.join();
        }
    }
}
