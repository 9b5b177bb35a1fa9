use std::process::ExitCode;

use clap::Parser;

// mimalloc: rendering a large repo allocates many small strings and maps;
// it renders 10k services about 1.5x faster than the system allocator
// (docs/benchmarks.md, "Render").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
