//! `clusterf import`: the samples under `tests/import/` imported by the
//! real binary into a directory, then rendered by it (`render --output
//! ipvsadm`) and compared with the table they came from: an ipvsadm dump
//! itself (normalised: parsed and written by clusterf's dump parser and
//! writer) when all of it is imported, the
//! table keepalived makes from a keepalived.conf (`NAME.ipvsadm`, the
//! same table the VM scenario `import-keepalived` takes from a real
//! keepalived), and what was not imported (`NAME.stderr`).
//!
//! `CLUSTERF_BLESS=1 cargo test --test import` rewrites the expected files.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn clusterf(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("NO_COLOR", "1")
        .output()
        .expect("run clusterf")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn samples(dir: &str, ext: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/import")
        .join(dir);
    let mut out: Vec<PathBuf> = fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    out.sort();
    assert!(!out.is_empty(), "no samples in {}", root.display());
    out
}

/// Imports `sample`; the exit code, stderr (the out directory as `OUT`,
/// without the `wrote` lines) and the rendered table.
fn import(from: &str, sample: &Path) -> (i32, String, String) {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("repo");
    let rel = sample.strip_prefix(env!("CARGO_MANIFEST_DIR")).unwrap();
    let o = clusterf(&[
        "import",
        "--from",
        from,
        rel.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    let code = o.status.code().unwrap_or(-1);
    let stderr: String = text(&o.stderr)
        .lines()
        .filter(|l| !l.starts_with("wrote "))
        .map(|l| l.replace(dir.to_str().unwrap(), "OUT") + "\n")
        .collect();
    if code == 1 {
        return (code, stderr, String::new());
    }
    let r = clusterf(&[
        "render",
        "--config-path",
        dir.to_str().unwrap(),
        "--output",
        "ipvsadm",
    ]);
    assert!(
        r.status.success(),
        "{}: the imported repository does not render: {}",
        rel.display(),
        text(&r.stderr)
    );
    assert_eq!(text(&r.stderr), "", "{}: render warns", rel.display());
    (code, stderr, text(&r.stdout))
}

fn compare(path: &Path, actual: &str, failures: &mut Vec<String>) {
    if std::env::var_os("CLUSTERF_BLESS").is_some() {
        fs::write(path, actual).unwrap();
        return;
    }
    let expected = fs::read_to_string(path).unwrap_or_default();
    if expected != actual {
        let diff = similar::TextDiff::from_lines(&expected, actual)
            .unified_diff()
            .header("expected", "actual")
            .to_string();
        failures.push(format!("{}:\n{diff}", path.display()));
    }
}

#[test]
fn keepalived_samples_render_to_the_table_keepalived_makes_and_list_the_rest() {
    let mut failures = Vec::new();
    for sample in samples("keepalived", "conf") {
        let (code, stderr, table) = import("keepalived", &sample);
        compare(
            &sample.with_extension("stderr"),
            &format!("exit: {code}\n{stderr}"),
            &mut failures,
        );
        compare(&sample.with_extension("ipvsadm"), &table, &mut failures);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn ipvsadm_dumps_render_back_to_the_dump_less_what_is_listed() {
    let mut failures = Vec::new();
    for sample in samples("ipvsadm", "dump") {
        let (code, stderr, table) = import("ipvsadm", &sample);
        compare(
            &sample.with_extension("stderr"),
            &format!("exit: {code}\n{stderr}"),
            &mut failures,
        );
        if code == 0 {
            // The whole dump came back.
            let dump = normalised(&fs::read_to_string(&sample).unwrap());
            if dump != table {
                failures.push(format!(
                    "{}: rendered\n{table}\nnot the dump\n{dump}",
                    sample.display()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The dump as `ipvsadm -S -n` writes it (the parser and the writer the
/// rest of clusterf uses), for comparing with `render --output ipvsadm`.
fn normalised(dump: &str) -> String {
    let state = clusterf::ipvsadm::parse(dump).expect("the sample parses");
    clusterf::ipvsadm::format(&state)
}

#[test]
fn a_non_empty_out_directory_is_refused_without_force() {
    let out = tempfile::tempdir().unwrap();
    fs::write(out.path().join("README"), "mine").unwrap();
    let dir = out.path().to_str().unwrap();
    let o = clusterf(&[
        "import",
        "--from",
        "ipvsadm",
        "tests/import/ipvsadm/every-option.dump",
        "--out",
        dir,
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        text(&o.stderr).contains("is not empty: nothing written (--force writes into it)"),
        "{}",
        text(&o.stderr)
    );
    assert!(!out.path().join("clusterf.yaml").exists());
    let o = clusterf(&[
        "import",
        "--from",
        "ipvsadm",
        "tests/import/ipvsadm/every-option.dump",
        "--out",
        dir,
        "--force",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    assert!(out.path().join("clusterf.yaml").exists());
    assert_eq!(
        fs::read_to_string(out.path().join("README")).unwrap(),
        "mine"
    );
}

#[test]
fn a_dump_on_stdin_is_imported() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("repo");
    let mut child = Command::new(env!("CARGO_BIN_EXE_clusterf"))
        .args([
            "import",
            "--from",
            "ipvsadm",
            "-",
            "--out",
            dir.to_str().unwrap(),
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write as _;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.1.0.1:80 -m -w 1\n")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let svc = fs::read_to_string(dir.join("services/10.0.0.1-80.yaml")).unwrap();
    assert!(
        svc.contains("\"10.1.0.1\": {ipv4: 10.1.0.1, tcp: 80, weight: 1}"),
        "{svc}"
    );
}

#[test]
fn keepalived_syntax_errors_name_file_line_and_column_all_at_once_and_write_nothing() {
    let out = tempfile::tempdir().unwrap();
    let conf = out.path().join("bad.conf");
    fs::write(
        &conf,
        "virtual_server 10.0.0.1 80 {\n  weight x\n  real_server 10.1.0.1 80 {\n    weight heavy\n  }\n  real_server nowhere 80\n  path \"open\n}\n}\nvirtual_server 10.0.0.2 $PORT {\n",
    )
    .unwrap();
    let dir = out.path().join("repo");
    let o = clusterf(&[
        "import",
        "--from",
        "keepalived",
        conf.to_str().unwrap(),
        "--out",
        dir.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    let name = conf.to_str().unwrap();
    let stderr = text(&o.stderr).replace(name, "bad.conf");
    assert_eq!(
        stderr,
        "bad.conf:4:12: weight: \"heavy\" is not a weight\n\
         bad.conf:6:15: \"nowhere\" is not an IP address\n\
         bad.conf:7:8: a quoted string is not closed on its line\n\
         bad.conf:9:1: a } without a { before it\n\
         bad.conf:10:1: virtual_server needs 2 arguments\n\
         bad.conf:10:25: $PORT is not defined (define it with $PORT=VALUE before)\n\
         bad.conf:10:26: this { is never closed\n\
         error: bad.conf: 7 problems: nothing written\n"
    );
    assert!(!dir.exists());
}
