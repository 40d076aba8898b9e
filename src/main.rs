//! The `berth` binary: everything lives in the library.
fn main() -> std::process::ExitCode {
    berth::cli::main()
}
