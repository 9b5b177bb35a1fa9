use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = match clusterf::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // Usage errors exit 1 like every other error, so that exit 2
            // stays free for `plan --detailed-exitcode` ("changes present").
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    clusterf::cli::run(cli)
}
