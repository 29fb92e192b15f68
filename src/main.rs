//! The detectd command line: wiring only.

fn main() {
    eprintln!("detectd: no commands yet");
    std::process::exit(2);
}
