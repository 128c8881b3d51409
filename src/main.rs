//! The `bankgate` binary: parse the command line, run it, turn an error into an exit code.

fn main() -> std::process::ExitCode {
    bankgate::cli::run()
}
