//! `quorate run`: placeholder until the harness lands.
use clap::Args;

#[derive(Args, Debug)]
pub struct RunArgs {}

pub fn main(_args: RunArgs) -> u8 {
    eprintln!("quorate run: not built yet");
    3
}
