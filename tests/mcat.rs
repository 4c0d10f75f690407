//! mcat, the command-line companion, run as a user would run it, in the private namespace:
//! listen and send, text, hex and JSON output, standard input lines, authenticated
//! groups, --stats, --timeout, ping between two processes, doctor's simplest findings,
//! and the exit statuses its help promises. (Ping across hosts and every doctor finding:
//! scripts/test-ping and scripts/test-doctor, on the simulated LAN.)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Output, Stdio};

use common::{require_private_netns, test_addr, test_iface, unique_port};

const MCAT: &str = env!("CARGO_BIN_EXE_mcat");

fn mcat(args: &[&str]) -> Output {
    require_private_netns();
    Command::new(MCAT).args(args).output().expect("mcat runs")
}

/// Starts a listener and waits until it has joined (its "listening on" line).
fn listener(args: &[&str]) -> Child {
    require_private_netns();
    let mut child = Command::new(MCAT)
        .arg("listen")
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("mcat listen starts");
    let mut stderr = BufReader::new(child.stderr.take().expect("stderr"));
    let mut line = String::new();
    stderr.read_line(&mut line).expect("a first line");
    assert!(line.starts_with("mcat: listening on "), "{line:?}");
    // Keep reading standard error in the background, so --stats never blocks on it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    child
}

fn finished(child: Child) -> (i32, String) {
    let out = child.wait_with_output().expect("mcat listen ends");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).expect("UTF-8 output"),
    )
}

#[test]
fn listen_and_send_text_hex_and_json() {
    let port = unique_port();
    let group = format!("239.7.0.1:{port}");
    let plain = listener(&[&group, "--count", "2", "--timeout", "10"]);
    let json = listener(&[&group, "--count", "2", "--timeout", "10", "--json"]);
    assert!(mcat(&["send", &group, "hello, group"]).status.success());
    let binary = mcat(&["send", &group, "-"]);
    assert!(binary.status.success());
    // "-" with empty standard input sends nothing; then bytes that are not text:
    let mut send = Command::new(MCAT)
        .args(["send", &group])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin.take().unwrap().write_all(b"\0\xff\x07").unwrap();
    assert!(send.wait().unwrap().success());

    let source = format!("{}:{port}", test_addr());
    let (code, out) = finished(plain);
    assert_eq!(code, 0, "{out}");
    assert_eq!(
        out,
        format!("{source}  hello, group\n{source}  (3 bytes) 00ff07\n")
    );
    let (code, out) = finished(json);
    assert_eq!(code, 0, "{out}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["text"], "hello, group");
    assert_eq!(lines[0]["source"], source.as_str());
    assert_eq!(lines[0]["group"], "239.7.0.1");
    assert_eq!(lines[0]["port"], port);
    assert_eq!(lines[1]["hex"], "00ff07");
    assert_eq!(lines[1]["len"], 3);
}

#[test]
fn standard_input_lines_are_datagrams_on_a_named_interface() {
    let port = unique_port();
    let group = format!("239.7.0.2:{port}");
    let iface = test_iface();
    let listen = listener(&[&group, "-i", &iface, "--count", "3", "--timeout", "10"]);
    let mut send = Command::new(MCAT)
        .args(["send", &group, "-i", &iface, "--ttl", "2"])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    send.stdin
        .take()
        .unwrap()
        .write_all(b"one\ntwo\nthree\n")
        .unwrap();
    assert!(send.wait().unwrap().success());
    let (code, out) = finished(listen);
    assert_eq!(code, 0);
    let texts: Vec<&str> = out.lines().map(|l| l.split("  ").nth(1).unwrap()).collect();
    assert_eq!(texts, ["one", "two", "three"]);
}

#[test]
fn ipv6_zones_and_authenticated_groups() {
    let port = unique_port();
    let group = format!("[ff02::7%{}]:{port}", test_iface());
    let listen = listener(&[&group, "--count", "1", "--timeout", "10"]);
    assert!(mcat(&["send", &group, "over six"]).status.success());
    let (code, out) = finished(listen);
    assert_eq!(code, 0);
    assert!(out.ends_with("  over six\n"), "{out}");
    // The sender's zone by name, as the group's was written, not the kernel's index.
    assert!(
        out.starts_with('[') && out.contains(&format!("%{}]:", test_iface())),
        "{out}"
    );

    let dir = std::env::temp_dir().join(format!("mcat-key-{port}"));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("key");
    std::fs::write(
        &key,
        "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
    )
    .unwrap();
    let key = key.to_str().unwrap();
    let group = format!("239.7.0.3:{port}");
    let keyed = listener(&[&group, "--key-file", key, "--count", "1", "--timeout", "10"]);
    assert!(mcat(&["send", &group, "forged"]).status.success());
    assert!(mcat(&["send", &group, "--key-file", key, "sealed"])
        .status
        .success());
    let (code, out) = finished(keyed);
    assert_eq!(code, 0);
    assert!(out.ends_with("  sealed\n"), "{out}");

    std::fs::write(dir.join("short"), "0011").unwrap();
    let short = mcat(&[
        "send",
        &group,
        "--key-file",
        dir.join("short").to_str().unwrap(),
        "x",
    ]);
    assert_eq!(
        short.status.code(),
        Some(2),
        "a malformed key file is a usage error"
    );
    let said = String::from_utf8_lossy(&short.stderr);
    assert!(
        said.contains("a group key must be 32 bytes, not 2"),
        "{said}"
    );
    assert!(
        !said.contains("0011"),
        "the key's bytes were printed: {said}"
    );
    std::fs::remove_dir_all(dir).unwrap();
}

/// `send --raw` sends standard input as one datagram, bytes as they are; `listen --raw`
/// writes them back the same, nothing added.
#[test]
fn raw_datagrams_keep_newlines_and_nuls() {
    let port = unique_port();
    let group = format!("239.7.0.6:{port}");
    let listen = listener(&[&group, "--raw", "--count", "1", "--timeout", "10"]);
    let bytes = b"line one\nline two\n\0\xff end".to_vec();
    let mut send = Command::new(MCAT)
        .args(["send", "--raw", &group])
        .stdin(Stdio::piped())
        .spawn()
        .expect("mcat send starts");
    send.stdin.take().unwrap().write_all(&bytes).unwrap();
    assert!(send.wait().unwrap().success());
    let out = listen.wait_with_output().expect("mcat listen ends");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(out.stdout, bytes);
    let both = mcat(&["send", "--raw", &group, "message"]);
    assert_eq!(both.status.code(), Some(2), "--raw and a MESSAGE together");
}

/// `send --size --count --rate`: a numbered stream of that many datagrams of that size.
#[test]
fn generated_streams_are_numbered() {
    let port = unique_port();
    let group = format!("239.7.0.8:{port}");
    let listen = listener(&[&group, "--json", "--count", "5", "--timeout", "10"]);
    let send = mcat(&[
        "send", &group, "--size", "12", "--count", "5", "--rate", "500",
    ]);
    let said = String::from_utf8_lossy(&send.stderr);
    assert_eq!(send.status.code(), Some(0), "{said}");
    assert!(said.contains("sent 5 datagrams of 12 bytes"), "{said}");
    let (code, out) = finished(listen);
    assert_eq!(code, 0, "{out}");
    let numbers: Vec<String> = out
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["len"], 12, "{line}");
            v["hex"].as_str().unwrap()[..16].to_owned()
        })
        .collect();
    let expected: Vec<String> = (0u64..5).map(|i| format!("{i:016x}")).collect();
    assert_eq!(numbers, expected);
}

/// Ctrl-C (SIGINT) ends a listen with its summary on standard error, exit status 0.
#[test]
fn interrupted_listen_prints_its_summary() {
    let port = unique_port();
    let group = format!("239.7.0.9:{port}");
    require_private_netns();
    let mut child = Command::new(MCAT)
        .args(["listen", &group])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    assert!(line.starts_with("mcat: listening on "), "{line}");
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    assert!(mcat(&["send", &group, "one"]).status.success());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.ends_with("  one\n"), "{first:?}");
    // SAFETY: kill(2) on the child's own pid, which has not been waited for yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let status = child.wait().unwrap();
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut rest).unwrap();
    assert_eq!(status.code(), Some(0), "{rest}");
    assert!(
        rest.starts_with("mcat: 1 datagrams, 3 bytes, 1 senders in "),
        "{rest:?}"
    );
    assert!(rest.contains("0 dropped by the kernel"), "{rest:?}");
}

#[test]
fn stats_lines_and_timeout() {
    let port = unique_port();
    let group = format!("239.7.0.4:{port}");
    require_private_netns();
    let mut child = Command::new(MCAT)
        .args(["listen", &group, "--timeout", "1.5", "--stats", "0.2"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = BufReader::new(child.stderr.take().unwrap());
    let lines: Vec<String> = stderr.lines().map(Result::unwrap).collect();
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(3),
        "--timeout without datagrams: {lines:?}"
    );
    assert!(
        lines[0].starts_with("mcat: listening on 239.7.0.4:"),
        "{lines:?}"
    );
    assert!(
        lines.iter().any(|l| l.starts_with(
            "mcat: 0 datagrams (0.0/s since the last line), 0 bytes, 0 senders, 0 dropped"
        )),
        "{lines:?}"
    );
}

#[test]
fn failures_and_usage_have_their_exit_statuses() {
    for (args, code, said) in [
        (
            &["send", "10.0.0.1:9999", "x"][..],
            2,
            "is not a multicast address",
        ),
        (&["send", "239.1.1.1", "x"], 2, "is not GROUP:PORT"),
        (&["listen", "notanaddress"], 2, "is not GROUP:PORT"),
        (
            &["send", "ff15::1:9999", "x"],
            2,
            "put an IPv6 group in brackets",
        ),
        (
            &["send", "239.1.1.1:0", "x"],
            2,
            "port must be between 1 and 65535",
        ),
        (
            &["send", "239.1.1.1:99999", "x"],
            2,
            "port must be between 1 and 65535",
        ),
        (
            &["listen", "239.1.1.1:9999", "-i", "nope0"],
            1,
            "interface not found: nope0",
        ),
        (
            &["send", "239.1.1.1:9999", "--ttl", "0", "x"],
            2,
            "expected a TTL from 1 to 255",
        ),
        (
            &["ping", "239.1.1.1:9999", "--ttl", "256"],
            2,
            "expected a TTL from 1 to 255",
        ),
        (
            &["doctor", "239.1.1.1:9999", "--ttl", "0"],
            2,
            "expected a TTL from 1 to 255",
        ),
        (
            &["listen", "239.1.1.1:9999", "--timeout", "0"],
            2,
            "invalid value '0' for '--timeout <SECONDS>': expected a positive number",
        ),
        (
            &["ping", "239.1.1.1:9999", "--interval", "0"],
            2,
            "invalid value '0' for '--interval <SECONDS>': expected a positive number",
        ),
        (
            &["ping", "239.1.1.1:65535", "--count", "1"],
            2,
            "with port 65535, choose --unicast-port",
        ),
        (
            &["doctor", "239.1.1.1:9999", "--sender", "fd00::1"],
            2,
            "is not of the group's family",
        ),
        (
            &["doctor", "10.1.1.1:9999"],
            2,
            "is not a multicast address",
        ),
        (
            &["doctor", "239.1.1.1:9999", "--probe"],
            2,
            "the following required arguments were not provided:\n  --sender <ADDR>",
        ),
        (
            &[
                "send",
                "239.1.1.1:9999",
                "--key-file",
                "/proc/self/comm",
                "x",
            ],
            2,
            "does not hold hex digits",
        ),
        (
            &["send", "239.1.1.1:9999", "--size", "70000", "--count", "1"],
            2,
            "is more than the largest message",
        ),
        (
            &["send", "239.1.1.1:9999", "--count", "3", "x"],
            2,
            "--size",
        ),
        (
            &["send", "239.1.1.1:9999", "--size", "8", "--rate", "0"],
            2,
            "expected datagrams per second",
        ),
        (&["listen"], 2, "GROUP:PORT"),
        (&["frobnicate"], 2, "unrecognized subcommand"),
        (&["relay"], 2, "no groups to relay"),
        (
            &["relay", "--group", "10.0.0.1:9", "-i", "mc0", "-i", "mc1"],
            2,
            "not a multicast address",
        ),
        (
            &["relay", "--group", "239.1.1.1:9", "-i", "mc0"],
            2,
            "nothing to relay between",
        ),
        (
            &[
                "relay",
                "--group",
                "239.1.1.1:9",
                "-i",
                "mc0",
                "--peer",
                "10.0.0.2:7400",
            ],
            2,
            "--listen",
        ),
        (
            &["relay", "--config", "r.toml", "--group", "239.1.1.1:9"],
            2,
            "cannot be used with",
        ),
        (
            &["relay", "--config", "/nonexistent/relay.toml"],
            1,
            "cannot read /nonexistent/relay.toml",
        ),
    ] {
        let out = mcat(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(said), "{args:?}: {stderr}");
    }
}

#[test]
fn version_help_and_completions() {
    let version = mcat(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&version.stdout),
        format!("mcat {}\n", env!("CARGO_PKG_VERSION"))
    );
    let help = String::from_utf8_lossy(&mcat(&["--help"]).stdout).into_owned();
    for needed in [
        "listen",
        "send",
        "ping",
        "doctor",
        "Exit status",
        "GROUP:PORT",
    ] {
        assert!(help.contains(needed), "help lacks {needed:?}: {help}");
    }
    let bash = mcat(&["completions", "bash"]);
    assert!(bash.status.success());
    assert!(String::from_utf8_lossy(&bash.stdout).contains("_mcat()"));
}

/// mcat ping's JSON summary lines of one run: (peer, path) -> (sent, answered).
fn ping_summary(stdout: &[u8]) -> Vec<(String, String, u64, u64)> {
    String::from_utf8_lossy(stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|event| event["event"] == "summary")
        .map(|event| {
            (
                event["peer"].as_str().unwrap().to_owned(),
                event["path"].as_str().unwrap().to_owned(),
                event["sent"].as_u64().unwrap(),
                event["answered"].as_u64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn ping_between_two_processes_and_alone() {
    // Two pings on one host: each answers the other's multicast and unicast probes (their
    // unicast ports differ). Run one after the other's start, they overlap for a while
    // whatever the machine's load, and each counts only the probes sent while both ran.
    require_private_netns();
    let port = unique_port();
    let group = format!("239.7.0.5:{port}");
    let ping = |unicast_port: u16| {
        Command::new(MCAT)
            .args([
                "ping",
                &group,
                "-i",
                &test_iface(),
                "--interval",
                "0.05",
                "--count",
                "20",
            ])
            .args([
                "--wait",
                "2",
                "--json",
                "--unicast-port",
                &unicast_port.to_string(),
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let first = ping(unique_port());
    let second = ping(unique_port());
    let me = test_addr();
    for child in [first, second] {
        let out = child.wait_with_output().unwrap();
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{said}");
        let summary = ping_summary(&out.stdout);
        assert_eq!(summary.len(), 2, "one peer, two paths: {summary:?}");
        for (peer, path, sent, answered) in summary {
            assert_eq!(peer, me, "{path}");
            assert!(sent > 0 && answered == sent, "{path}: {answered} of {sent}");
        }
    }

    // Alone: nobody answers (exit 3); a listed peer is reported all the same.
    let alone = mcat(&[
        "ping",
        &group,
        "--interval",
        "0.05",
        "--count",
        "3",
        "--wait",
        "0.1",
        "--peer",
        "192.0.2.77",
    ]);
    let said = String::from_utf8_lossy(&alone.stdout);
    assert_eq!(alone.status.code(), Some(3), "{said}");
    assert!(
        said.lines().any(|line| line.starts_with("192.0.2.77 ")
            && line.ends_with(
                "unicast: 3 sent, 0 answered, 100.0% loss, 0 duplicates, rtt no answer"
            )),
        "{said}"
    );
}

#[test]
fn doctor_names_a_missing_interface_and_stays_quiet_when_told_to() {
    let group = format!("239.7.0.6:{}", unique_port());
    let missing = mcat(&["doctor", &group, "-i", "nosuch0", "--listen", "0"]);
    let said = String::from_utf8_lossy(&missing.stdout);
    assert_eq!(missing.status.code(), Some(4), "{said}");
    assert!(
        said.contains("finding: there is no interface nosuch0; fix: ip -br link"),
        "{said}"
    );
    let healthy = mcat(&["doctor", &group, "-i", &test_iface(), "--listen", "0"]);
    let said = String::from_utf8_lossy(&healthy.stdout);
    assert_eq!(healthy.status.code(), Some(0), "{said}");
    assert!(
        said.contains("skipped: IGMP querier: not listened for (--listen 0)"),
        "{said}"
    );
    assert!(said.ends_with("no problems found\n"), "{said}");
}

/// Runs mcat with `args`; its exit code, or None if it was still running after 5 s
/// (then killed: a long but valid duration, not a crash).
fn exit_code_within_5s(args: &[String]) -> Option<i32> {
    require_private_netns();
    let mut child = Command::new(MCAT)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mcat starts");
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("mcat waits") {
            // A signal (a panic's abort) has no code: -1, which the callers refuse.
            return Some(status.code().unwrap_or(-1));
        }
        if start.elapsed() > std::time::Duration::from_secs(5) {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// Every duration option, with a command that ends at once whatever the duration is
/// (a listen for no datagrams, a ping of no probes), unless it says otherwise.
fn duration_commands(group: &str, value: &str) -> Vec<Vec<String>> {
    // Each ping on a unicast port of its own (PORT+1 may be another test's group port).
    let args = |list: &[&str]| {
        let mut args: Vec<String> = list.iter().map(|a| a.to_string()).collect();
        if list[0] == "ping" {
            args.extend(["--unicast-port".to_owned(), unique_port().to_string()]);
        }
        args
    };
    vec![
        args(&["listen", group, "--count", "0", "--timeout", value]),
        args(&["listen", group, "--count", "0", "--stats", value]),
        args(&[
            "ping",
            group,
            "--count",
            "0",
            "--wait",
            "0",
            "--interval",
            value,
        ]),
        args(&["ping", group, "--count", "0", "--wait", value]),
    ]
}

/// Durations that mcat once panicked on (an Instant overflowed) and their like: each is
/// a usage error (exit status 2), never a panic (101).
#[test]
fn hostile_durations_are_usage_errors() {
    let group = format!("239.7.0.9:{}", unique_port());
    for value in [
        "1e19",
        "1e300",
        "inf",
        "-inf",
        "nan",
        "-1",
        "18446744073709551616",
        "",
        "1s",
        "0x10",
    ] {
        let mut commands = duration_commands(&group, value);
        commands.push(
            ["doctor", &group, "--listen", value]
                .iter()
                .map(|a| a.to_string())
                .collect(),
        );
        for args in commands {
            assert_eq!(
                exit_code_within_5s(&args),
                Some(2),
                "mcat {}",
                args.join(" ")
            );
        }
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig { cases: 48, ..Default::default() })]

    /// Any number, written any way, in any duration option: mcat runs, ends with a
    /// status, or is still running (a valid long duration); it never panics.
    #[test]
    fn no_duration_makes_mcat_panic(
        number in proptest::num::f64::ANY,
        exponent in proptest::bool::ANY,
    ) {
        let group = format!("239.7.0.10:{}", unique_port());
        let value = if exponent { format!("{number:e}") } else { format!("{number}") };
        for args in duration_commands(&group, &value) {
            let code = exit_code_within_5s(&args);
            proptest::prop_assert!(
                code.is_none_or(|c| c == 0 || c == 2 || c == super_exit_timeout(&args)),
                "mcat {} exited {code:?}", args.join(" ")
            );
        }
    }
}

/// A ping that heard no one exits 3, as its help says; listen ends 0.
fn super_exit_timeout(args: &[String]) -> i32 {
    if args[0] == "ping" {
        3
    } else {
        0
    }
}
