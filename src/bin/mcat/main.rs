//! mcat: the command-line companion of libmulticast. Listens to a group, sends to it,
//! built on the library's Rust API (so it also exercises it from the outside).
//!
//! Built with `--features cli` (make builds and installs it); Rust dependents of the
//! library never compile it or its argument parser.

use std::io::{self, BufRead, Write};
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Args, CommandFactory, Parser, Subcommand};
use multicast::{address, Group, GroupKey, JoinOptions, Timeout};

/// Exit statuses, as `mcat --help` lists them.
const EXIT_FAILURE: u8 = 1;
const EXIT_TIMEOUT: u8 = 3;
const EXIT_PROBLEM: u8 = 4;

mod doctor;
mod firewall;
mod interrupt;
mod perf;
mod ping;
#[cfg(target_os = "linux")]
mod relay;

#[derive(Parser)]
#[command(
    name = "mcat",
    version,
    about = "Listen to and send to UDP multicast groups (libmulticast's command-line companion)",
    after_help = "\
GROUP:PORT is an IPv4 or IPv6 multicast group and a port: 239.1.1.1:9999,
[ff15::1]:9999, [ff02::1%eth0]:9999 (a link-scoped IPv6 group names its
interface as a zone). IFACE is an interface name (eth0) or one of this host's
addresses; without -i the kernel's multicast route chooses.

Exit status: 0 done; 1 a failure (the message says which and why); 2 a usage
error; 3 listen --timeout passed before --count datagrams arrived, or ping heard
no peer at all; 4 ping: a peer answered by unicast but never over multicast, or
doctor found a problem."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Join GROUP:PORT and print each datagram: its sender and its text (or hex), or
    /// one JSON object per line with --json.
    Listen(Listen),
    /// Send MESSAGE to GROUP:PORT as one datagram; with no MESSAGE or "-", each line
    /// of standard input as one datagram.
    Send(Send),
    /// Test multicast between hosts, like omping: run it on each of them at once. Each
    /// probes the group and its peers (by unicast) every --interval and answers their
    /// probes; prints, per peer, multicast and unicast loss, round-trip time and
    /// duplicates, then a summary (at --count, or on Ctrl-C).
    Ping(ping::Ping),
    /// Explain why datagrams of GROUP:PORT would not arrive here: one finding per line,
    /// each with the command that fixes it (Linux; some checks need root).
    Doctor(doctor::Doctor),
    /// Measure a multicast stream, as iperf -u does: `perf send` sends numbered
    /// datagrams at a rate, each `perf receive` (any number at once) prints per interval
    /// what arrived, was lost, reordered or duplicated, the jitter and the rate.
    Perf(perf::Perf),
    /// Carry groups between interfaces (VLANs) and between sites over unicast UDP,
    /// sealed with a site key: ranges, per-direction rules, no loops or duplicates,
    /// rate limits, counters; SIGHUP reloads --config (Linux; root or CAP_NET_RAW).
    #[cfg(target_os = "linux")]
    Relay(relay::Relay),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Write mcat's manual pages into DIR: mcat.1 and one per subcommand (mcat-listen.1,
    /// ...), as `make install` installs them.
    Man {
        /// The directory (it must exist).
        dir: std::path::PathBuf,
    },
}

#[derive(Args)]
struct Common {
    /// The group and port, e.g. 239.1.1.1:9999 or [ff02::1%eth0]:9999.
    #[arg(value_name = "GROUP:PORT", value_parser = group_port_arg)]
    group: String,
    /// The interface: a name (eth0) or one of this host's addresses.
    #[arg(short, long, value_name = "IFACE")]
    interface: Option<String>,
    /// An authenticated group: a file holding the 32-byte group key as 64 hex digits
    /// (every member uses the same; see docs/authentication.md).
    #[arg(long, value_name = "FILE")]
    key_file: Option<std::path::PathBuf>,
    /// The id of the key in --key-file.
    #[arg(long, value_name = "ID", default_value_t = 0, requires = "key_file")]
    key_id: u8,
}

#[derive(Args)]
struct Listen {
    #[command(flatten)]
    common: Common,
    /// Receive only what this address sends (source-specific multicast).
    #[arg(long, value_name = "ADDR")]
    source: Option<String>,
    /// Stop after N datagrams.
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// Give up after this many seconds without a datagram (exit status 3).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    timeout: Option<Duration>,
    /// One JSON object per datagram: source, group, port, len, and text (UTF-8) or hex.
    #[arg(long, conflicts_with = "raw")]
    json: bool,
    /// Write each datagram's bytes as they are, nothing else (for pipes).
    #[arg(long)]
    raw: bool,
    /// Every SECONDS, a one-line summary on standard error.
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    stats: Option<Duration>,
}

#[derive(Args)]
struct Send {
    #[command(flatten)]
    common: Common,
    /// Time to live (hops) of the datagrams, 1..255.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = ttl_arg)]
    ttl: u32,
    /// Do not let this host's own members hear the datagrams.
    #[arg(long)]
    no_loopback: bool,
    /// Standard input, all of it, as one datagram: bytes as they are (newlines and NULs
    /// included).
    #[arg(long, conflicts_with_all = ["message", "size"])]
    raw: bool,
    /// A generated stream instead of a message: datagrams of N bytes (the first 8 a
    /// big-endian sequence number, from 0), until --count or Ctrl-C.
    #[arg(long, value_name = "N", conflicts_with = "message")]
    size: Option<usize>,
    /// With --size: how many datagrams (default: until Ctrl-C).
    #[arg(long, value_name = "N")]
    count: Option<u64>,
    /// With --size: datagrams per second (default: as fast as the kernel takes them).
    #[arg(long, value_name = "R", value_parser = rate_arg)]
    rate: Option<f64>,
    /// The message; "-" or none: each line of standard input.
    message: Option<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Listen(listen) => run_listen(&listen),
        Command::Send(send) => run_send(&send),
        Command::Ping(ping) => ping::run(&ping),
        Command::Doctor(doctor) => doctor::run(&doctor),
        Command::Perf(perf) => perf::run(&perf),
        #[cfg(target_os = "linux")]
        Command::Relay(relay) => relay::run(&relay),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "mcat", &mut io::stdout());
            Ok(ExitCode::SUCCESS)
        }
        Command::Man { dir } => clap_mangen::generate_to(Cli::command(), &dir)
            .map(|()| ExitCode::SUCCESS)
            .map_err(|e| format!("cannot write manual pages into {}: {e}", dir.display())),
    };
    outcome.unwrap_or_else(|message| {
        eprintln!("mcat: {message}");
        ExitCode::from(EXIT_FAILURE)
    })
}

/// GROUP:PORT checked as clap parses the command line, so that a malformed one is a usage
/// error (exit status 2, as the help says) like any other; kept as the user wrote it.
fn group_port_arg(text: &str) -> Result<String, String> {
    group_and_port(text).map(|_| text.to_owned())
}

/// A TTL (IPv6 hop limit) option: 1..255, else a usage error.
fn ttl_arg(text: &str) -> Result<u32, String> {
    text.parse::<u32>()
        .ok()
        .filter(|ttl| (1..=255).contains(ttl))
        .ok_or_else(|| format!("expected a TTL from 1 to 255, not {text}"))
}

/// Splits GROUP:PORT at its last colon, keeping Go's bracketed IPv6 spelling whole:
/// the group as written (zone and all), its address, and the port.
fn group_and_port(text: &str) -> Result<(String, IpAddr, u16), String> {
    let (group, port) = text
        .rsplit_once(':')
        .filter(|(group, _)| !group.is_empty())
        .ok_or_else(|| {
            format!("{text:?} is not GROUP:PORT (say 239.1.1.1:9999 or [ff15::1]:9999)")
        })?;
    if group.contains(':') && !group.starts_with('[') {
        return Err(format!(
            "{text:?}: put an IPv6 group in brackets before the port, as in [{group}]:PORT"
        ));
    }
    let port: i64 = port
        .parse()
        .map_err(|_| format!("{text:?}: the port {port:?} is not a number"))?;
    let (ip, _zone) = address::parse_group_spec(group).map_err(|e| e.to_string())?;
    let port = address::parse_port(port).map_err(|e| e.to_string())?;
    Ok((group.to_owned(), ip, port))
}

fn read_key(common: &Common) -> Result<Option<GroupKey>, String> {
    let Some(path) = &common.key_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read the key file {}: {e}", path.display()))?;
    key_from_text(&text, path, common.key_id)
        .map(Some)
        .map_err(|e| usage_error(e))
}

/// A group or site key from the text of a key file: 64 hex digits (surrounding
/// whitespace ignored); errors name the file.
fn key_from_text(text: &str, path: &std::path::Path, id: u8) -> Result<GroupKey, String> {
    let hex = text.trim();
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect::<Option<Vec<u8>>>()
        .filter(|_| hex.len() % 2 == 0)
        .ok_or_else(|| format!("the key file {} does not hold hex digits", path.display()))?;
    GroupKey::new(id, &bytes)
        .map_err(|e| format!("the key file {}: {}", path.display(), e.message()))
}

/// A usage error found after parsing (one option against another, a malformed file an
/// option names): printed as clap prints its own, exit status 2.
fn usage_error(message: impl std::fmt::Display) -> ! {
    Cli::command()
        .error(clap::error::ErrorKind::ValueValidation, message)
        .exit()
}

fn join(common: &Common, options: JoinOptions) -> Result<Group, String> {
    let (group, _, port) = group_and_port(&common.group)?;
    let mut options = options.interface(common.interface.as_deref().unwrap_or(""));
    if let Some(key) = read_key(common)? {
        options = options.group_key(key);
    }
    Group::join_with(&group, port, &options).map_err(|e| e.to_string())
}

fn run_send(send: &Send) -> Result<ExitCode, String> {
    // Checked here: clap waives `requires` when the message (which --size conflicts
    // with) is given.
    if send.size.is_none() && (send.count.is_some() || send.rate.is_some()) {
        usage_error("--count and --rate go with --size (a generated stream)");
    }
    let options = JoinOptions::default()
        .ttl(send.ttl)
        .loopback(!send.no_loopback);
    let group = join(&send.common, options)?;
    match send.message.as_deref() {
        _ if send.size.is_some() => return send_stream(&group, send),
        _ if send.raw => {
            let mut datagram = Vec::new();
            io::Read::read_to_end(&mut io::stdin().lock(), &mut datagram)
                .map_err(|e| format!("cannot read standard input: {e}"))?;
            group.send(&datagram).map_err(|e| e.to_string())?;
        }
        Some(message) if message != "-" => {
            group.send(message.as_bytes()).map_err(|e| e.to_string())?;
        }
        _ => {
            // Lines as bytes: a datagram need not be text.
            for line in io::stdin().lock().split(b'\n') {
                let line = line.map_err(|e| format!("cannot read standard input: {e}"))?;
                group.send(&line).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// A rate option: datagrams per second, more than 0 and at most 10^9.
fn rate_arg(text: &str) -> Result<f64, String> {
    text.parse::<f64>()
        .ok()
        .filter(|r| *r > 0.0 && *r <= 1e9)
        .ok_or_else(|| format!("expected datagrams per second, more than 0 up to 1e9, not {text}"))
}

/// `send --size`: numbered datagrams at --rate until --count or Ctrl-C; a summary line.
fn send_stream(group: &Group, send: &Send) -> Result<ExitCode, String> {
    let size = send.size.unwrap_or(0);
    if size > group.max_message_size() {
        usage_error(format!(
            "--size {size} is more than the largest message this group sends ({})",
            group.max_message_size()
        ));
    }
    interrupt::catch();
    let mut datagram = vec![0u8; size];
    let pace = Pace::new(send.rate);
    let mut sent = 0u64;
    while send.count.is_none_or(|count| sent < count) && !interrupt::happened() {
        pace.wait_for(sent);
        let seq = sent.to_be_bytes();
        let n = seq.len().min(size);
        datagram[..n].copy_from_slice(&seq[..n]);
        group.send(&datagram).map_err(|e| e.to_string())?;
        sent += 1;
    }
    let seconds = pace.start.elapsed().as_secs_f64().max(1e-9);
    eprintln!(
        "mcat: sent {sent} datagrams of {size} bytes in {seconds:.3} s ({:.1}/s)",
        sent as f64 / seconds
    );
    Ok(ExitCode::SUCCESS)
}

/// Sending on a schedule: datagram i at start + i / rate, so that the rate holds over
/// the run however late any one send was.
struct Pace {
    start: Instant,
    interval: Option<Duration>,
}

impl Pace {
    fn new(rate: Option<f64>) -> Pace {
        Pace {
            start: Instant::now(),
            interval: rate.map(|r| Duration::from_secs_f64(1.0 / r)),
        }
    }

    /// Sleeps until datagram `i` is due (not at all without a rate).
    fn wait_for(&self, i: u64) {
        let Some(interval) = self.interval else {
            return;
        };
        let due = self.start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if due > now {
            std::thread::sleep(due - now);
        }
    }
}

fn run_listen(listen: &Listen) -> Result<ExitCode, String> {
    let mut options = JoinOptions::default();
    if let Some(source) = &listen.source {
        options = options.source(source);
    }
    let group = join(&listen.common, options)?;
    let (idle, every) = (listen.timeout, listen.stats);
    eprintln!("mcat: listening on {}", listen.common.group);
    interrupt::catch();
    let mut stats = Stats::new(Instant::now());
    let mut out = io::stdout().lock();
    let mut buf = vec![0u8; group.max_message_size()];
    while listen.count.is_none_or(|count| stats.datagrams < count) {
        if interrupt::happened() {
            stats.summary(&group, Instant::now());
            break;
        }
        let now = Instant::now();
        let wait = match (idle, every) {
            (Some(idle), _) if now >= stats.last + idle => return Ok(ExitCode::from(EXIT_TIMEOUT)),
            (idle, every) => [
                idle.map(|d| stats.last + d - now),
                every.map(|d| (stats.reported + d).saturating_duration_since(now)),
                Some(INTERRUPT_CHECK),
            ]
            .into_iter()
            .flatten()
            .min(),
        };
        let timeout = wait.map_or(Timeout::Never, Timeout::After);
        if let Some(received) = group
            .receive(timeout, &mut buf)
            .map_err(|e| e.to_string())?
        {
            let data = &buf[..received.len];
            stats.count(received.source, data.len(), Instant::now());
            let printed = if listen.raw {
                out.write_all(data).and_then(|()| out.flush())
            } else {
                print_datagram(&mut out, &group, received.source, data, listen.json)
            };
            printed.map_err(|e| format!("cannot write standard output: {e}"))?;
        }
        if let Some(every) = every {
            if Instant::now() >= stats.reported + every {
                stats.report(&group, Instant::now());
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// How often a waiting listen looks whether Ctrl-C came.
const INTERRUPT_CHECK: Duration = Duration::from_millis(100);

/// The longest duration any option takes, about 31 years: long enough to mean "for
/// ever", short enough that no deadline computed from it can overflow a clock.
const MAX_SECONDS: f64 = 1e9;

/// A duration option (seconds, fractions allowed), 0 up to [`MAX_SECONDS`]; anything
/// else is a usage error (exit status 2) naming the range.
fn seconds(text: &str) -> Result<Duration, String> {
    text.parse::<f64>()
        .ok()
        .filter(|s| (0.0..=MAX_SECONDS).contains(s))
        .map(Duration::from_secs_f64)
        .ok_or_else(|| {
            format!("expected a number of seconds from 0 to {MAX_SECONDS:e}, not {text}")
        })
}

/// As [`seconds`], more than zero (at least a nanosecond).
fn positive_seconds(text: &str) -> Result<Duration, String> {
    match seconds(text) {
        Ok(d) if !d.is_zero() => Ok(d),
        _ => Err(format!(
            "expected a positive number of seconds up to {MAX_SECONDS:e}, not {text}"
        )),
    }
}

fn print_datagram(
    out: &mut impl Write,
    group: &Group,
    source: SocketAddr,
    data: &[u8],
    json: bool,
) -> io::Result<()> {
    let text = std::str::from_utf8(data)
        .ok()
        .filter(|t| !t.chars().any(|c| c.is_control() && c != '\t'));
    let source = shown(source);
    if json {
        let mut line = serde_json::json!({
            "source": source,
            "group": group.group_addr().to_string(),
            "port": group.port(),
            "len": data.len(),
        });
        let (key, value) = match text {
            Some(text) => ("text", text.to_owned()),
            None => ("hex", hex(data)),
        };
        line[key] = serde_json::Value::String(value);
        writeln!(out, "{line}")?;
    } else {
        match text {
            Some(text) => writeln!(out, "{source}  {text}")?,
            None => writeln!(out, "{source}  ({} bytes) {}", data.len(), hex(data))?,
        }
    }
    out.flush()
}

/// An address as people write it: an IPv6 zone by its interface's name (`%mc0`), not the
/// kernel's index (`%5`).
fn shown(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(v6) if v6.scope_id() != 0 => {
            match multicast::interface::resolve_index_for(v6.scope_id(), true) {
                Ok(interface) => format!("[{}%{}]:{}", v6.ip(), interface.name, v6.port()),
                Err(_) => addr.to_string(),
            }
        }
        _ => addr.to_string(),
    }
}

fn hex(data: &[u8]) -> String {
    data.iter().map(|b| format!("{b:02x}")).collect()
}

/// ", N refused as not authentic" for an authenticated group; nothing otherwise.
fn refused_text(group: &Group) -> String {
    let auth = group.auth_counters();
    let refused = auth.unauthenticated + auth.unknown_key + auth.replayed;
    match group.is_authenticated() {
        true => format!(", {refused} refused as not authentic"),
        false => String::new(),
    }
}

/// What --stats reports: datagrams, bytes and senders since the start, and the rate
/// since the last report.
struct Stats {
    datagrams: u64,
    bytes: u64,
    senders: std::collections::HashSet<SocketAddr>,
    started: Instant,
    last: Instant,
    reported: Instant,
    /// Datagrams counted at the last report: the rate is over the interval since.
    reported_datagrams: u64,
}

impl Stats {
    fn new(now: Instant) -> Stats {
        Stats {
            datagrams: 0,
            bytes: 0,
            senders: Default::default(),
            started: now,
            last: now,
            reported: now,
            reported_datagrams: 0,
        }
    }

    fn count(&mut self, source: SocketAddr, len: usize, now: Instant) {
        self.datagrams += 1;
        self.bytes += len as u64;
        self.senders.insert(source);
        self.last = now;
    }

    /// The closing line on Ctrl-C: totals over the whole listen.
    fn summary(&self, group: &Group, now: Instant) {
        let seconds = now.duration_since(self.started).as_secs_f64();
        eprintln!(
            "mcat: {} datagrams, {} bytes, {} senders in {seconds:.1} s, {} dropped by the kernel{}",
            self.datagrams,
            self.bytes,
            self.senders.len(),
            group.dropped(),
            refused_text(group),
        );
    }

    fn report(&mut self, group: &Group, now: Instant) {
        let interval = now.duration_since(self.reported).as_secs_f64().max(1e-9);
        eprintln!(
            "mcat: {} datagrams ({:.1}/s since the last line), {} bytes, {} senders, {} dropped by the kernel{}",
            self.datagrams,
            (self.datagrams - self.reported_datagrams) as f64 / interval,
            self.bytes,
            self.senders.len(),
            group.dropped(),
            refused_text(group),
        );
        self.reported = now;
        self.reported_datagrams = self.datagrams;
    }
}
