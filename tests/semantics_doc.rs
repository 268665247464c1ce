//! SEMANTICS.md is executable: every ` ```console ` block runs against a fresh real mount of the
//! test server, command by command, and each command's output (stdout then stderr) must be the
//! lines the document shows. The doc and the behaviour cannot drift apart silently.

mod common;

use common::mounted::Env;
use std::path::Path;
use std::process::Command;

/// Shell helpers the document's examples may use (described in its introduction).
const PREAMBLE: &str = r#"
wait_uploaded() {
  for _ in $(seq 1 600); do
    if cells-mount status "$MNT" --json | grep -q '"pending_ops": 0,'; then return 0; fi
    sleep 0.1
  done
  echo "wait_uploaded: the queue did not drain in 60 s" >&2; return 1
}
xattr_get() {
  python3 -c 'import os,sys
try: print(os.getxattr(sys.argv[1], sys.argv[2]).decode())
except OSError as e: print("[Errno %d] %s" % (e.errno, e.strerror))' "$1" "$2"
}
xattr_set() {
  python3 -c 'import os,sys
try: os.setxattr(sys.argv[1], sys.argv[2], sys.argv[3].encode()); print("ok")
except OSError as e: print("[Errno %d] %s" % (e.errno, e.strerror))' "$1" "$2" "$3"
}
"#;

/// One command of an example and the output the document promises.
struct Step {
    command: String,
    expected: Vec<String>,
}

struct Example {
    /// Line of the opening fence, for error messages.
    line: usize,
    steps: Vec<Step>,
}

fn parse(doc: &str) -> Vec<Example> {
    let mut out = Vec::new();
    let mut current: Option<Example> = None;
    for (i, line) in doc.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```console" => {
                current = Some(Example {
                    line: i + 1,
                    steps: Vec::new(),
                })
            }
            None => {}
            Some(_) if line.trim_end() == "```" => out.extend(current.take()),
            Some(ex) => match line.strip_prefix("$ ") {
                Some(cmd) => ex.steps.push(Step {
                    command: cmd.to_owned(),
                    expected: Vec::new(),
                }),
                None => match ex.steps.last_mut() {
                    Some(step) => step.expected.push(line.trim_end().to_owned()),
                    None => panic!("SEMANTICS.md:{}: output before any command", i + 1),
                },
            },
        }
    }
    assert!(current.is_none(), "SEMANTICS.md: unclosed console block");
    out
}

fn run_step(bench: &Env, step: &Step) -> Vec<String> {
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_cells-mount"))
        .parent()
        .expect("binary folder");
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let script = format!("{PREAMBLE}\n{{ {}\n}} 2>&1", step.command);
    let out = Command::new("bash")
        .arg("-c")
        .arg(script)
        .current_dir(bench.mnt())
        .env("PATH", path)
        .env("MNT", bench.mnt())
        .env("SERVER", bench.personal_dir())
        .env("LC_ALL", "C")
        .output()
        .expect("run bash");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim_end().to_owned())
        .collect()
}

#[test]
fn semantics_examples_match_the_mount() {
    if !common::fuse_available("semantics_examples_match_the_mount") {
        return;
    }
    let doc_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("SEMANTICS.md");
    let doc = std::fs::read_to_string(&doc_path).expect("read SEMANTICS.md");
    let examples = parse(&doc);
    assert!(
        examples.len() >= 5,
        "expected the document's examples, found {}",
        examples.len()
    );
    let mut failures = Vec::new();
    let mut commands = 0;
    for ex in &examples {
        let mut bench = Env::new(|_| {});
        bench.mount();
        for step in &ex.steps {
            commands += 1;
            let got = run_step(&bench, step);
            if got != step.expected {
                failures.push(format!(
                    "SEMANTICS.md:{}: `{}`\n  expected: {:?}\n  got:      {:?}",
                    ex.line, step.command, step.expected, got
                ));
                break;
            }
        }
        bench.unmount();
    }
    eprintln!(
        "SEMANTICS.md: {} examples, {commands} commands",
        examples.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_parser_reads_commands_and_their_output() {
    let doc = "text\n```console\n$ echo a\na\n$ true\n```\n```sh\n$ not run\n```\n";
    let ex = parse(doc);
    assert_eq!(ex.len(), 1);
    assert_eq!(ex[0].line, 2);
    assert_eq!(ex[0].steps.len(), 2);
    assert_eq!(ex[0].steps[0].command, "echo a");
    assert_eq!(ex[0].steps[0].expected, vec!["a".to_owned()]);
    assert!(ex[0].steps[1].expected.is_empty());
}
