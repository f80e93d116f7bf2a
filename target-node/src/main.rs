fn main() {
    eprintln!("quorate-node: not built yet");
    std::process::exit(3);
}
