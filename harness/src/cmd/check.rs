//! `quorate check`: placeholder until the checker lands.
use clap::Args;

#[derive(Args, Debug)]
pub struct CheckArgs {
    /// History files.
    #[arg(required = true)]
    pub files: Vec<std::path::PathBuf>,
}

pub fn main(_args: CheckArgs) -> u8 {
    eprintln!("quorate check: not built yet");
    3
}
